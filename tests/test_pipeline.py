"""The four phases end to end on a generated listing, on SQLite and on PostgreSQL: real ffmpeg, real
photos decoded from disk, real beat tracking. Assertions are on the video and the rows."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db.models import AnalysisResult, Clip, ClipStatus, Job, JobPhase, Photo, RoomCluster, Timeline
from app.db.session import session_scope
from app.media.ffmpeg import measure_loudness, probe
from app.orchestrator import run_job
from app.phases.base import PhaseContext
from app.services.jobs import create_job, photos_from_folder
from app.services.reports import job_report
from tests.conftest import make_context, make_settings

pytestmark = pytest.mark.slow

TARGET = 16.0


@dataclass
class Rendered:
    ctx: PhaseContext
    job_id: int
    report: dict[str, Any]
    listing: Any
    video: Path


def _render(ctx: PhaseContext, listing: Any, *, target: float = TARGET, music: bool = True) -> Rendered:
    job_id = create_job(
        ctx,
        listing_id="sample",
        photos=photos_from_folder(listing.photos_dir),
        music=listing.music_path if music else None,
        target_length=target,
    )
    outcome = run_job(ctx, job_id)
    assert outcome.status == "completed", outcome.error
    out = ctx.storage.get_file(
        ctx.storage.resolve_key(job_report(ctx, job_id)["output_uri"]), Path(ctx.settings.WORK_DIR) / "delivered.mp4"
    )
    return Rendered(ctx, job_id, job_report(ctx, job_id), listing, out)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, small_listing: Any
) -> Iterator[Rendered]:
    """One full render per database, shared by the assertions below (rendering is the slow part)."""
    tmp = tmp_path_factory.mktemp(f"pipeline-{request.param}")
    if request.param == "sqlite":
        from app.db.migrate import upgrade

        url = f"sqlite:///{tmp / 'p.db'}"
        upgrade(url)
    else:
        from tests.conftest import _truncate

        url = request.getfixturevalue("postgres_url")
        _truncate(url)
    yield _render(make_context(make_settings(tmp, url)), small_listing)


def test_video_has_the_promised_shape(rendered: Rendered) -> None:
    info = probe(rendered.video)
    assert info.video is not None and info.audio is not None
    assert (info.video.codec, info.video.width, info.video.height, info.video.fps) == ("h264", 640, 360, 30.0)
    assert info.video.pix_fmt == "yuv420p"
    assert info.audio.codec == "aac"
    total = rendered.report["timeline"]["total_duration"]
    assert abs(info.frame_count - round(total * 30)) <= 1, "duration within one frame of the timeline"
    loud = measure_loudness(rendered.video)
    assert -15.0 <= loud.integrated_lufs <= -13.0
    assert loud.true_peak_dbtp <= -0.5


def test_length_meets_target_within_one_beat(rendered: Rendered) -> None:
    tl = rendered.report["timeline"]
    period = 60.0 / rendered.listing.ground_truth["music"]["bpm"]
    assert abs(tl["total_duration"] - TARGET) <= period
    assert abs(tl["tempo"] - 112.0) < 1.0


def test_every_cut_lands_on_a_true_beat(rendered: Rendered) -> None:
    """Cuts in video time + the music offset must be ground-truth beats of the generated track."""
    tl = rendered.report["timeline"]
    truth = rendered.listing.ground_truth["music"]["beats"]
    frame = 1 / 30
    cuts = [c["end"] for c in tl["clips"][:-1]]
    assert cuts, "a multi-clip timeline"
    for cut in cuts:
        music_time = cut + tl["music_offset"]
        assert min(abs(music_time - b) for b in truth) < frame / 2, f"cut at {cut:.3f}s is off the beat"
    for c in tl["clips"]:
        assert c["beats"] >= 1


def test_story_opens_on_the_exterior_and_closes_outdoors(rendered: Rendered) -> None:
    rooms = [c["room"] for c in rendered.report["timeline"]["clips"]]
    assert rooms[0] == "exterior"
    assert rooms[-1] == "outdoor"
    order = {"exterior": 0, "living_room": 1, "kitchen": 2, "bedroom": 3, "bathroom": 4, "outdoor": 5}
    ranks = [order[r] for r in rooms]
    assert ranks == sorted(ranks), f"rooms out of tour order: {rooms}"


def test_clusters_never_merge_different_rooms(rendered: Rendered) -> None:
    truth = {Path(p["file"]).name: p["room_group"] for p in rendered.listing.ground_truth["photos"]}
    with session_scope(rendered.ctx.sessions) as s:
        photos = list(s.scalars(select(Photo).where(Photo.job_id == rendered.job_id)))
        clusters = {c.id: c for c in s.scalars(select(RoomCluster).where(RoomCluster.job_id == rendered.job_id))}
        heroes = list(s.scalars(select(AnalysisResult.hero_photo_id).where(AnalysisResult.job_id == rendered.job_id)))
    assert len(heroes) == len(clusters), "one hero per cluster"
    same_cluster_pairs = same_group_pairs = linked = 0
    for a, b in itertools.combinations(photos, 2):
        same_group = truth[a.filename] == truth[b.filename]
        same_cluster = a.room_cluster_id == b.room_cluster_id
        if same_cluster:
            same_cluster_pairs += 1
            assert same_group, f"{a.filename} and {b.filename} are different rooms but share a cluster"
        if same_group:
            same_group_pairs += 1
            linked += same_cluster
    assert linked / same_group_pairs >= 0.5, "most views of one room are grouped"
    bedrooms = {c.id for c in clusters.values() if c.room_type == "bedroom"}
    assert len(bedrooms) >= 2, "two bedrooms with one label stay two rooms"


def test_rows_record_what_happened(rendered: Rendered) -> None:
    with session_scope(rendered.ctx.sessions) as s:
        job = s.get(Job, rendered.job_id)
        assert job is not None and job.status == "completed" and job.current_phase == 4
        assert job.bpm and abs(job.bpm - 112) < 1
        phases = list(s.scalars(select(JobPhase).where(JobPhase.job_id == rendered.job_id)))
        assert [p.status for p in phases] == ["completed"] * 4
        assert all(p.duration_s and p.duration_s > 0 for p in phases)
        clips = list(s.scalars(select(Clip).where(Clip.job_id == rendered.job_id)))
        assert clips and all(c.status == ClipStatus.RENDERED and c.model_used == "ken_burns" for c in clips)
        assert all(c.validation_score and c.validation_score >= 0.6 for c in clips)
        photos = list(s.scalars(select(Photo).where(Photo.job_id == rendered.job_id)))
        assert all(p.label_source == "backend" for p in photos), "folder labels win over inference"
        assert all(0 <= (p.final_score or -1) <= 1 for p in photos)
    assert rendered.report["storyboard_uri"] and rendered.report["poster_uri"]


def test_rerun_from_phase_3_reuses_clips_and_adds_a_version(rendered: Rendered) -> None:
    ctx, job_id = rendered.ctx, rendered.job_id
    with session_scope(ctx.sessions) as s:
        before = {
            c.id: (c.render_attempts, c.rendered_at, c.s3_uri)
            for c in s.scalars(select(Clip).where(Clip.job_id == job_id))
        }
        attempts = {p.phase: p.attempts for p in s.scalars(select(JobPhase).where(JobPhase.job_id == job_id))}
    outcome = run_job(ctx, job_id, start_phase=3)
    assert outcome.status == "completed" and outcome.phases_run == [3, 4] and outcome.phases_skipped == [1, 2]
    with session_scope(ctx.sessions) as s:
        after = {
            c.id: (c.render_attempts, c.rendered_at, c.s3_uri)
            for c in s.scalars(select(Clip).where(Clip.job_id == job_id))
        }
        versions = sorted(s.scalars(select(Timeline.version).where(Timeline.job_id == job_id)))
        phases = {p.phase: p.attempts for p in s.scalars(select(JobPhase).where(JobPhase.job_id == job_id))}
        job = s.get(Job, job_id)
        assert job is not None
        latest = versions[-1]
    assert after == before, "no clip was rendered again"
    assert latest == max(1, len(versions)) and len(versions) >= 2
    assert phases[1] == attempts[1] and phases[2] == attempts[2]
    assert phases[3] == attempts[3] + 1 and phases[4] == attempts[4] + 1
    # Re-planning gave a timeline identical to the last one: its deliverable is kept, not re-encoded.
    with session_scope(ctx.sessions) as s:
        details = s.scalars(select(JobPhase.details).where(JobPhase.job_id == job_id, JobPhase.phase == 4)).one()
    same = details["reused"] == 1
    assert f"/v{1 if same else latest}/16x9-branded.mp4" in (job.output_uri or "")
    assert ctx.storage.exists(ctx.storage.resolve_key(job.output_uri or ""))


def test_redelivery_of_a_finished_job_does_nothing(rendered: Rendered) -> None:
    ctx, job_id = rendered.ctx, rendered.job_id

    def counts() -> tuple[int, ...]:
        with session_scope(ctx.sessions) as s:
            return tuple(
                s.scalar(select(func.count()).select_from(m).where(m.job_id == job_id)) or 0
                for m in (Clip, Timeline, RoomCluster, AnalysisResult, Photo)
            )

    before = counts()
    outcome = run_job(ctx, job_id)
    assert outcome.phases_run == [] and outcome.phases_skipped == [1, 2, 3, 4]
    assert counts() == before


def test_phase_2_resumes_from_its_checkpoints(tmp_path: Path, sqlite_url: str, small_listing: Any) -> None:
    """A worker that died after two clips: the next run renders only the rest."""
    from app.orchestrator import run_phase
    from app.phases.render.phase import render_clip

    ctx = make_context(make_settings(tmp_path, sqlite_url))
    job_id = create_job(
        ctx,
        listing_id="x",
        photos=photos_from_folder(small_listing.photos_dir),
        music=small_listing.music_path,
        target_length=10,
    )
    run_job(ctx, job_id, phases=[1])
    with session_scope(ctx.sessions) as s:
        clip_ids = list(s.scalars(select(Clip.id).where(Clip.job_id == job_id).order_by(Clip.id)))
    first = [render_clip(ctx, cid) for cid in clip_ids[:2]]
    assert all(o.rendered for o in first)
    ran, _ = run_phase(ctx, job_id, 2)
    assert ran
    with session_scope(ctx.sessions) as s:
        attempts = {cid: n for cid, n in s.execute(select(Clip.id, Clip.render_attempts).where(Clip.job_id == job_id))}
    assert all(attempts[c] == 1 for c in clip_ids), "checkpointed clips were not rendered twice"
    again = render_clip(ctx, clip_ids[0])
    assert not again.rendered


def test_phase_order_is_enforced(tmp_path: Path, sqlite_url: str, small_listing: Any) -> None:
    from app.errors import PhaseOrderError

    ctx = make_context(make_settings(tmp_path, sqlite_url))
    job_id = create_job(
        ctx, listing_id="x", photos=photos_from_folder(small_listing.photos_dir), music=small_listing.music_path
    )
    with pytest.raises(PhaseOrderError):
        run_job(ctx, job_id, start_phase=3)


def test_pipeline_on_postgres_and_s3(s3_ctx: PhaseContext, small_listing: Any) -> None:
    """Fleet-shaped state: PostgreSQL rows, every binary in S3 (moto_server over HTTP)."""
    import boto3

    rendered = _render(s3_ctx, small_listing, target=8.0)
    report = rendered.report
    assert report["output_uri"].startswith(f"s3://{s3_ctx.settings.S3_BUCKET}/jobs/{rendered.job_id}/phase4/v1/")
    s3 = boto3.client("s3", endpoint_url=s3_ctx.settings.AWS_ENDPOINT_URL, region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=s3_ctx.settings.S3_BUCKET, Prefix=f"jobs/{rendered.job_id}/")
    objects = {o["Key"] for o in listed.get("Contents", [])}
    assert any(k.endswith("/16x9-branded.mp4") for k in objects) and any(k.endswith("/poster.jpg") for k in objects)
    assert any("/phase2/clips/" in k for k in objects) and any("/input/photos/" in k for k in objects)
    with session_scope(s3_ctx.sessions) as s:
        uris = list(s.scalars(select(Clip.s3_uri).where(Clip.job_id == rendered.job_id)))
    assert uris and all(u and u.startswith("s3://") for u in uris)
    info = probe(rendered.video)
    assert info.video and info.audio and abs(info.frame_count - round(report["timeline"]["total_duration"] * 30)) <= 1
    # Re-running phase 4 overwrites the same deterministic keys instead of adding objects.
    assert run_job(s3_ctx, rendered.job_id, start_phase=4).status == "completed"
    listed = s3.list_objects_v2(Bucket=s3_ctx.settings.S3_BUCKET, Prefix=f"jobs/{rendered.job_id}/phase2/")
    assert {o["Key"] for o in listed.get("Contents", [])} == {k for k in objects if "/phase2/" in k}


def test_label_precedence_override_then_backend_then_inferred(
    tmp_path: Path, database_url: str, small_listing: Any
) -> None:
    """room_override (a user's edit) > room_label (the backend's) > the heuristic guess; each recorded."""
    from app.services.jobs import PhotoInput

    ctx = make_context(make_settings(tmp_path, database_url))
    inputs = photos_from_folder(small_listing.photos_dir)
    exterior = next(i for i in inputs if i.room_label == "exterior")
    rest = [i for i in inputs if i is not exterior]
    job_id = create_job(ctx, listing_id="labels", photos=[PhotoInput(path=exterior.path), *rest], music=None)
    with session_scope(ctx.sessions) as s:
        kitchen = s.scalars(select(Photo).where(Photo.job_id == job_id, Photo.room_label == "kitchen")).first()
        assert kitchen is not None
        kitchen.room_override = "dining_room"
        kitchen_id = kitchen.id
    assert run_job(ctx, job_id, phases=[1]).status != "failed"
    with session_scope(ctx.sessions) as s:
        rows = {p.id: p for p in s.scalars(select(Photo).where(Photo.job_id == job_id))}
    assert (rows[kitchen_id].resolved_room_label, rows[kitchen_id].label_source) == ("dining_room", "override")
    first = min(rows.values(), key=lambda p: p.position)
    assert first.filename == exterior.path.name and first.room_label is None
    assert first.label_source == "heuristic:v2" and first.resolved_room_label == first.inferred_room_label
    assert first.is_exterior is True, "the unlabelled exterior is recognised as an exterior"
    others = [p for p in rows.values() if p.id not in (kitchen_id, first.id)]
    assert all(p.label_source == "backend" and p.resolved_room_label == p.room_label for p in others)


def test_rerun_from_phase_1_reuses_renders_whose_plan_did_not_change(rendered: Rendered) -> None:
    """Analysis is deterministic: re-planning yields the same plans, so phase 2 reuses every clip."""
    ctx, job_id = rendered.ctx, rendered.job_id
    with session_scope(ctx.sessions) as s:
        before = {
            c.photo_id: (c.id, c.render_key, c.render_attempts)
            for c in s.scalars(select(Clip).where(Clip.job_id == job_id))
        }
    outcome = run_job(ctx, job_id, start_phase=1)
    assert outcome.status == "completed" and outcome.phases_run == [1, 2, 3, 4]
    with session_scope(ctx.sessions) as s:
        after = {
            c.photo_id: (c.id, c.render_key, c.render_attempts)
            for c in s.scalars(select(Clip).where(Clip.job_id == job_id))
        }
        details = s.scalars(select(JobPhase.details).where(JobPhase.job_id == job_id, JobPhase.phase == 2)).one()
    assert after == before, "same clip rows, same render keys, no new render attempts"
    assert details["reused"] == len(before) and details["rendered"] == 0


def test_a_failed_job_records_why_and_others_carry_on(
    tmp_path: Path, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from app.samples import make_sample_listing

    listing = make_sample_listing(
        tmp_path_factory.mktemp("two-rooms"),
        width=480,
        height=320,
        music_seconds=12,
        seed=9,
        rooms=["exterior", "kitchen"],
    )
    ctx = make_context(make_settings(tmp_path, database_url))
    photos = photos_from_folder(listing.photos_dir)
    broken = create_job(ctx, listing_id="broken", photos=photos, music=listing.music_path, target_length=6)
    healthy = create_job(ctx, listing_id="healthy", photos=photos, music=listing.music_path, target_length=6)
    with session_scope(ctx.sessions) as s:
        music_uri = s.get(Job, broken).music_uri  # type: ignore[union-attr]
    # The stored music goes bad after the job was accepted (a truncated upload, say).
    Path(ctx.storage.local_path(ctx.storage.resolve_key(music_uri), tmp_path)).write_bytes(b"\x00" * 2048)

    failed = run_job(ctx, broken)
    assert failed.status == "failed" and failed.exit_code == 2
    assert failed.error and failed.error.startswith("phase 3 (timeline): cannot decode music")
    with session_scope(ctx.sessions) as s:
        job = s.get(Job, broken)
        assert job is not None and job.status == "failed" and job.error == failed.error
        phase3 = s.scalars(select(JobPhase).where(JobPhase.job_id == broken, JobPhase.phase == 3)).one()
        assert phase3.status == "failed" and "cannot decode music" in (phase3.error or "")
        assert "Traceback" not in (job.error or "")
    assert run_job(ctx, healthy).status == "completed"
