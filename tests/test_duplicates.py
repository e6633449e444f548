"""The same shot twice is shown once: an exact re-upload (perceptual hash) and a re-exposed, re-cropped
copy the hash misses (room matching's SIFT-verified near-duplicate)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageEnhance
from sqlalchemy import select

from app.db.models import Photo
from app.db.session import session_scope
from app.orchestrator import run_job
from app.phases.base import PhaseContext
from app.services.jobs import create_job, photos_from_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.samples import make_sample_listing

    sample = make_sample_listing(
        tmp_path_factory.mktemp("dups"), width=900, height=600, music_seconds=5, seed=21,
        rooms=["kitchen", "bedroom_a"], workers=1,
    )  # fmt: skip
    folder = sample.photos_dir
    kitchen = sorted(folder.glob("kitchen/*.jpg"))[0]
    with Image.open(kitchen) as img:
        w, h = img.size
        # Brighter and cropped 6 % on each side, saved at another quality: the hash no longer matches.
        copy = ImageEnhance.Brightness(img.crop((int(0.06 * w), int(0.06 * h), int(0.94 * w), int(0.94 * h)))).enhance(
            1.3
        )
        copy.save(kitchen.with_name("zz_reupload.jpg"), quality=80)
        img.save(kitchen.with_name("zz_exact.jpg"), quality=95)
    return folder


def test_reexposed_recrop_and_exact_copy_are_duplicates(ctx: PhaseContext, photos: Path) -> None:
    job_id = create_job(ctx, listing_id="dups", photos=photos_from_folder(photos), music=None)
    outcome = run_job(ctx, job_id, phases=(1,))
    assert outcome.status != "failed" and outcome.phases_run == [1], outcome.error
    with session_scope(ctx.sessions) as s:
        rows = {p.filename: p for p in s.scalars(select(Photo).where(Photo.job_id == job_id))}
        dup_of = {name: (p.analysis or {}).get("duplicate_of") for name, p in rows.items()}
        ids = {p.id: name for name, p in rows.items()}
    original = next(n for n in dup_of if n.startswith("kitchen") and n.endswith("view1.jpg"))
    group = {original, "zz_reupload.jpg", "zz_exact.jpg"}
    shown = [n for n in group if dup_of[n] is None]
    assert len(shown) == 1, dup_of
    assert all(ids[dup_of[n]] in group for n in group - set(shown)), dup_of
    others = [n for n in dup_of if n not in group]
    assert others and all(dup_of[n] is None for n in others), "different views are not duplicates"
    fingerprints = {}
    with session_scope(ctx.sessions) as s:
        for p in s.scalars(select(Photo).where(Photo.job_id == job_id)):
            fingerprints[p.filename] = p.fingerprint
    from app.media.images import fingerprint_distance

    assert fingerprint_distance(fingerprints[original], fingerprints["zz_reupload.jpg"]) > 4, "the hash alone misses it"
