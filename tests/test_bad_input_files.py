"""Bad input, file by file: the names, paths and files people hand us, grouped by kind of input.

Each case either works end to end (ingest -> storage key -> read back -> phase 1) or is refused with a
one-line reason that names what the user gave: never a 503 for the user's own mistake, never a traceback,
never the server's storage root. Everything is generated here (PIL, numpy); nothing comes from ../shared.
"""

from __future__ import annotations

import errno
import os
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from app.config import Settings
from app.db.models import Job, Photo
from app.db.session import session_scope
from app.errors import InvalidInputError, NoUsablePhotosError
from app.orchestrator import run_job
from app.phases.base import PhaseContext
from app.services.jobs import PhotoRef, create_job, create_job_from_uris, photos_from_folder
from app.services.reports import job_report
from tests.conftest import make_context, make_settings

API_KEY = "k"


def _photo(path: Path, seed: int, size: tuple[int, int] = (480, 360)) -> Path:
    """A distinct, analysable JPEG (coloured blocks: sharp edges, no two alike)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 255, (size[1] // 40 + 1, size[0] // 40 + 1, 3), dtype=np.uint8)
    rgb = np.kron(blocks, np.ones((40, 40, 1), np.uint8))[: size[1], : size[0]]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, quality=90)
    return path


def _photo_rows(ctx: PhaseContext, job_id: int) -> list[Photo]:
    with session_scope(ctx.sessions) as s:
        rows = list(s.scalars(select(Photo).where(Photo.job_id == job_id).order_by(Photo.position)))
        s.expunge_all()
    return rows


def _storage_files(ctx: PhaseContext) -> dict[str, int]:
    root = Path(ctx.settings.LOCAL_STORAGE_PATH)
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}


# =============================================================================================
# 1. File names: every name a phone, a Mac or a Windows machine produces works end to end
# =============================================================================================

#: name on disk -> name shown in reports. A 300-character name cannot exist on a local disk (255 bytes
#: per name), so the longest local names are 255 bytes; 300 characters arrive through S3 (section 3).
NAMES = {
    "Küche.jpg": "Küche.jpg",
    unicodedata.normalize("NFD", "Schlafzimmer Süd.jpg"): unicodedata.normalize("NFD", "Schlafzimmer Süd.jpg"),
    "客厅 全景.jpg": "客厅 全景.jpg",
    "🏠 Vorderseite 🌳.jpeg": "🏠 Vorderseite 🌳.jpeg",
    "IMG 0001 (1).JPG": "IMG 0001 (1).JPG",
    "#1 kitchen.jpg": "#1 kitchen.jpg",
    "100% view.jpg": "100% view.jpg",
    "what?.jpg": "what?.jpg",
    "C:\\Users\\agent\\DSC 1.jpg": "C:\\Users\\agent\\DSC 1.jpg",  # a Windows path kept whole by a zip tool
    "x" * 251 + ".jpg": "x" * 251 + ".jpg",  # 255 bytes: the longest name a local disk allows
    "客" * 83 + ".jpg": "客" * 83 + ".jpg",  # 253 bytes of UTF-8 in 87 characters
}


def _odd_listing(folder: Path) -> Path:
    for i, name in enumerate(NAMES):
        _photo(folder / name, seed=i)
    # Bytes that are not UTF-8 (a Latin-1 name from an old zip): readable, shown with U+FFFD.
    latin1 = os.fsencode(folder) + b"/K\xfcche alt.jpg"
    _photo(Path(os.fsdecode(latin1)), seed=99)
    return folder


def _check_phase1_on_odd_names(ctx: PhaseContext, folder: Path) -> None:
    job_id = create_job(ctx, listing_id="odd-names", photos=photos_from_folder(folder), music=None)
    outcome = run_job(ctx, job_id, phases=[1])
    assert outcome.status != "failed", outcome.error
    rows = _photo_rows(ctx, job_id)
    shown = {r.filename: r for r in rows}
    assert set(shown) == {*NAMES.values(), "K\ufffdche alt.jpg"}
    assert all(r.status == "ok" for r in rows), [(r.filename, r.reject_reason) for r in rows]
    for row in rows:
        key = ctx.storage.resolve_key(row.s3_uri)
        assert all(len(part.encode()) <= 255 for part in key.split("/")), key
        local = ctx.storage.local_path(key, Path(ctx.settings.WORK_DIR) / "readback")
        assert Image.open(local).size == (480, 360)
    assert not job_report(ctx, job_id)["skipped_photos"]


def test_phase1_on_odd_names_with_a_storage_root_of_spaces_and_accents(tmp_path: Path, database_url: str) -> None:
    """SQLite and PostgreSQL; LOCAL_STORAGE_PATH itself has a space, an umlaut, `#` and `%`."""
    ctx = make_context(make_settings(tmp_path, database_url, LOCAL_STORAGE_PATH=tmp_path / "my störage #1 100%"))
    _check_phase1_on_odd_names(ctx, _odd_listing(tmp_path / "photos"))


def test_phase1_on_odd_names_on_s3(s3_ctx: PhaseContext, tmp_path: Path) -> None:
    _check_phase1_on_odd_names(s3_ctx, _odd_listing(tmp_path / "photos"))


def test_a_heic_from_an_iphone_goes_through_phase1(tmp_path: Path, sqlite_url: str) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    folder = tmp_path / "photos"
    _photo(folder / "front.jpg", seed=1)
    heic = folder / "IMG_4711.HEIC"
    pillow_heif.from_pillow(Image.open(_photo(tmp_path / "src.jpg", seed=2))).save(heic, quality=90)
    ctx = make_context(make_settings(tmp_path, sqlite_url))
    job_id = create_job(ctx, listing_id="heic", photos=photos_from_folder(folder), music=None)
    assert run_job(ctx, job_id, phases=[1]).status != "failed"
    rows = {r.filename: r for r in _photo_rows(ctx, job_id)}
    assert rows["IMG_4711.HEIC"].status == "ok" and (rows["IMG_4711.HEIC"].width, rows["IMG_4711.HEIC"].height) == (
        480,
        360,
    )


def test_a_listing_id_longer_than_its_column_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    ctx = make_context(make_settings(tmp_path, sqlite_url))
    photo = _photo(tmp_path / "photos" / "a.jpg", seed=1)
    from app.services.jobs import PhotoInput

    with pytest.raises(InvalidInputError, match="longer than 128 characters"):
        create_job(ctx, listing_id="L" * 129, photos=[PhotoInput(photo)], music=None)
    with session_scope(ctx.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


# =============================================================================================
# 2. Files: too big, not a file, links out of the folder. Refused before any copy, with a reason
# =============================================================================================


def test_bad_files_are_rejected_before_anything_is_stored(tmp_path: Path, database_url: str) -> None:
    folder = tmp_path / "photos"
    _photo(folder / "kitchen" / "good.jpg", seed=1)
    _photo(folder / "good2.jpg", seed=2)
    with open(folder / "huge.jpg", "wb") as fh:
        fh.truncate(200_000_000)  # 200 MB (sparse): over the 60 MB limit by stat alone
    secret = tmp_path / "etc" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (folder / "passwd.jpg").symlink_to(secret)
    (folder / "sneaky.jpg").symlink_to(Path("..") / "etc" / "passwd")
    (folder / "inside.jpg").symlink_to(folder / "kitchen" / "good.jpg")  # a link inside is fine
    (folder / "dangling.jpg").symlink_to(folder / "gone.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    os.mkfifo(folder / "pipe.jpg")  # not a file: skipped, and never opened (it would block)
    ctx = make_context(make_settings(tmp_path, database_url))

    job_id = create_job(ctx, listing_id="bad-files", photos=photos_from_folder(folder), music=None)
    assert run_job(ctx, job_id, phases=[1]).status != "failed"
    reasons = {s["file"]: s["reason"] for s in job_report(ctx, job_id)["skipped_photos"]}
    assert set(reasons) == {"huge.jpg", "passwd.jpg", "sneaky.jpg", "dangling.jpg", "empty.jpg"}
    assert reasons["huge.jpg"] == "file_too_big: 200000000 bytes > limit 60000000"
    assert reasons["passwd.jpg"].startswith("outside_folder") and reasons["sneaky.jpg"].startswith("outside_folder")
    assert reasons["dangling.jpg"].startswith("unreadable") and reasons["empty.jpg"] == "empty_file"
    assert all(str(tmp_path) not in r for r in reasons.values())
    stored = _storage_files(ctx)
    inputs = sorted(k.rsplit("/", 1)[-1] for k in stored if "/input/photos/" in k)
    assert inputs == ["002_good2.jpg", "004_inside.jpg", "005_good.jpg"], inputs
    assert all(size < 1_000_000 for size in stored.values()), "nothing of the 200 MB file"
    assert not any(b"root:x:0:0" in Path(ctx.settings.LOCAL_STORAGE_PATH, k).read_bytes() for k in stored)
    ok = [r.filename for r in _photo_rows(ctx, job_id) if r.status == "ok"]
    assert sorted(ok) == ["good.jpg", "good2.jpg", "inside.jpg"]

    # A re-run of phase 1 keeps them rejected (it never tries to read what was never stored).
    assert run_job(ctx, job_id, start_phase=1, phases=[1]).status != "failed"
    again = {s["file"]: s["reason"] for s in job_report(ctx, job_id)["skipped_photos"]}
    assert again == reasons


def test_a_folder_of_only_refused_files_fails_before_a_job_exists(tmp_path: Path, sqlite_url: str) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    with open(folder / "huge.jpg", "wb") as fh:
        fh.truncate(61_000_000)
    (folder / "passwd.jpg").symlink_to("/etc/passwd")
    ctx = make_context(make_settings(tmp_path, sqlite_url))
    with pytest.raises(NoUsablePhotosError) as info:
        create_job(ctx, listing_id="x", photos=photos_from_folder(folder), music=None)
    message = str(info.value)
    assert "\n" not in message and "huge.jpg: file_too_big" in message and "passwd.jpg: outside_folder" in message
    with session_scope(ctx.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
    assert not _storage_files(ctx)


def test_a_file_that_grew_past_the_limit_is_refused_at_ingest_not_copied(tmp_path: Path, sqlite_url: str) -> None:
    """MAX_IMAGE_BYTES is the deployment's: the ingest check uses it, not a default."""
    folder = tmp_path / "photos"
    _photo(folder / "a.jpg", seed=1)
    big = _photo(folder / "b.jpg", seed=2, size=(1600, 1200))
    ctx = make_context(make_settings(tmp_path, sqlite_url, MAX_IMAGE_BYTES=big.stat().st_size - 1))
    job_id = create_job(ctx, listing_id="x", photos=photos_from_folder(folder), music=None)
    rows = {r.filename: r for r in _photo_rows(ctx, job_id)}
    assert rows["b.jpg"].status == "rejected" and (rows["b.jpg"].reject_reason or "").startswith("file_too_big")
    assert [k for k in _storage_files(ctx) if "/input/" in k] == [f"jobs/{job_id}/input/photos/000_a.jpg"]


# =============================================================================================
# 3. URIs (the API's photos[].uri and music_uri): the input's fault is 422, an outage 503
# =============================================================================================


@contextmanager
def _api(settings: Settings) -> Iterator[TestClient]:
    from app.api.main import create_app

    with TestClient(create_app(settings)) as client:
        client.headers["X-API-Key"] = API_KEY
        yield client


def _body(*uris: str) -> dict[str, Any]:
    return {"listing_id": "l-1", "photos": [{"uri": u} for u in uris], "enqueue": False}


def _api_settings(tmp_path: Path, url: str, **extra: object) -> Settings:
    return make_settings(tmp_path, url, API_KEY=API_KEY, LOCAL_STORAGE_PATH=tmp_path / "rails storage", **extra)


def _error(body: dict[str, Any]) -> tuple[str, str]:
    """(code, message) of an API error body, in either of its shapes."""
    if isinstance(body.get("error"), dict):
        return body["error"]["code"], body["error"]["message"]
    return body.get("error") or "", body["detail"]


def _without(text: str, given: str) -> str:
    """`text` without the URI the user sent, whole or shortened for the message (its own business)."""
    for form in (given, given[:119] + "…"):
        text = text.replace(repr(form)[1:-1], "").replace(form, "")
    return text


def test_uris_the_user_got_wrong_are_422_and_name_no_server_path(tmp_path: Path, database_url: str) -> None:
    settings = _api_settings(tmp_path, database_url)
    root = Path(settings.LOCAL_STORAGE_PATH).resolve()
    good = _photo(root / "uploads" / "front.jpg", seed=1)
    long_name = "n" * 300 + ".jpg"
    cases = {
        "300-char name, relative": f"uploads/{long_name}",
        "300-char name, file URI": (root / "uploads").as_uri() + "/" + long_name,
        "300-char name, absolute": f"{root}/uploads/{long_name}",
        "NUL byte": "uploads/a\x00.jpg",
        "newline": "uploads/a\n.jpg",
        "bytes that are not UTF-8": (root / "uploads").as_uri() + "/%FC.jpg",
        "other host": "file://nas.local/uploads/front.jpg",
        "outside the root": str(tmp_path / "elsewhere.jpg"),
        "relative traversal": "uploads/../../elsewhere.jpg",
        "encoded traversal": (root / "uploads").as_uri() + "/%2E%2E/%2E%2E/etc/passwd",
        "a name under a file": "uploads/front.jpg/inner.jpg",
        "missing odd name": "uploads/Küche #2 100%.jpg",
    }
    # The service's own messages (what workers and the CLI show too) name no server path...
    ctx = make_context(settings)
    for what, uri in cases.items():
        with pytest.raises(InvalidInputError) as info:
            create_job_from_uris(ctx, listing_id="l-1", photos=[PhotoRef(good.as_uri()), PhotoRef(uri)])
        message = _without(str(info.value), uri)
        assert message.startswith("photos[1].uri") and "\n" not in message, (what, message)
        assert str(root) not in message and "rails storage" not in message, (what, message)
        assert str(tmp_path) not in message, (what, message)
    # ...and the API answers 422 for each, never 503.
    with _api(settings) as client:
        for what, uri in cases.items():
            response = client.post("/internal/jobs", json=_body(good.as_uri(), uri))
            assert response.status_code == 422, (what, response.text)
            code, message = _error(response.json())
            # The request schema may catch some first (NUL): a 422 either way.
            assert code in ("InvalidInputError", "ValidationError") and "\n" not in message, (what, code, message)
    with session_scope(_sessions(database_url)) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def _sessions(url: str) -> Any:
    from app.db.session import session_factory

    return session_factory(url)


def test_odd_names_in_uris_are_found_in_every_form(tmp_path: Path, sqlite_url: str) -> None:
    settings = _api_settings(tmp_path, sqlite_url)
    root = Path(settings.LOCAL_STORAGE_PATH).resolve()
    names = ["Küche #2 100%.jpg", unicodedata.normalize("NFD", "Bäder?.jpg"), "客厅 🏠.jpg"]
    uris: list[str] = []
    for i, name in enumerate(names):
        path = _photo(root / "uploads" / name, seed=i)
        uris += [path.as_uri(), "file://" + str(path), str(path), f"uploads/{name}"]
    with _api(settings) as client:
        response = client.post("/internal/jobs", json=_body(*uris))
        assert response.status_code == 201, response.text
        job_id = response.json()["job_id"]
    ctx = make_context(settings)
    rows = _photo_rows(ctx, job_id)
    assert [r.filename for r in rows] == [n for n in names for _ in range(4)]
    assert {ctx.storage.resolve_key(r.s3_uri) for r in rows} == {f"uploads/{n}" for n in names}
    assert run_job(ctx, job_id, phases=[1]).status != "failed"
    assert all(r.status == "ok" for r in _photo_rows(ctx, job_id))


def test_a_real_storage_outage_is_still_503(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _api_settings(tmp_path, sqlite_url)
    root = Path(settings.LOCAL_STORAGE_PATH).resolve()
    good = _photo(root / "uploads" / "front.jpg", seed=1)
    real_is_file = Path.is_file

    def failing_disk(self: Path) -> bool:
        if "uploads" in self.parts:
            raise OSError(errno.EIO, "Input/output error", str(self))
        return real_is_file(self)

    with _api(settings) as client:
        monkeypatch.setattr(Path, "is_file", failing_disk)
        response = client.post("/internal/jobs", json=_body(good.as_uri()))
        monkeypatch.undo()
    assert response.status_code == 503, response.text
    code, message = _error(response.json())
    assert code == "StorageError" and "front.jpg" in message and str(root) not in message


@pytest.mark.parametrize(
    ("code", "status", "is_input"), [("403", 403, True), ("SlowDown", 503, False), ("500", 500, False)]
)
def test_s3_refusing_a_key_is_the_input_but_s3_failing_is_an_outage(
    tmp_path: Path, sqlite_url: str, code: str, status: int, is_input: bool
) -> None:
    """The API answers 422 for an `InvalidInputError` and 503 for a `StorageError`."""
    import boto3
    from botocore.stub import Stubber

    from app.errors import PicaividError, StorageError
    from app.storage import S3Storage

    store = S3Storage("uploads", endpoint_url=None)
    store._client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(store._client)
    stubber.add_client_error("head_object", service_error_code=code, http_status_code=status)
    stubber.activate()
    ctx = make_context(make_settings(tmp_path, sqlite_url, S3_BUCKET="uploads"), storage=store)
    with pytest.raises(PicaividError) as info:
        create_job_from_uris(ctx, listing_id="l", photos=[PhotoRef("s3://uploads/listings/1/Küche #1.jpg")])
    assert isinstance(info.value, InvalidInputError) is is_input, info.value
    assert isinstance(info.value, StorageError) is not is_input, info.value
    assert "photos[0].uri" in str(info.value) and "\n" not in str(info.value)


def test_s3_keys_longer_than_a_local_name_work_in_place(s3_ctx: PhaseContext) -> None:
    """S3 allows 300-character names; the photos.filename column (255) and the local cache do not."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_ctx.settings.AWS_ENDPOINT_URL, region_name="us-east-1")
    bucket = s3_ctx.settings.S3_BUCKET
    work = Path(s3_ctx.settings.WORK_DIR)
    names = ["L" * 300 + ".jpg", "Küche #2 100% what?.jpg", unicodedata.normalize("NFD", "Bäder.jpg")]
    for i, name in enumerate(names):
        s3.upload_file(str(_photo(work / "src" / f"{i}.jpg", seed=i)), bucket, f"listings/9/{name}")
    refs = [PhotoRef(uri=f"s3://{bucket}/listings/9/{name}") for name in names]
    job_id = create_job_from_uris(s3_ctx, listing_id="9", photos=refs)
    rows = _photo_rows(s3_ctx, job_id)
    assert [r.s3_uri for r in rows] == [ref.uri for ref in refs]
    assert len(rows[0].filename or "") == 255 and (rows[0].filename or "").endswith("….jpg")
    assert run_job(s3_ctx, job_id, phases=[1]).status != "failed"
    assert all(r.status == "ok" for r in _photo_rows(s3_ctx, job_id))
    with pytest.raises(InvalidInputError, match="does not exist"):
        create_job_from_uris(s3_ctx, listing_id="9", photos=[PhotoRef(uri=f"s3://{bucket}/listings/9/{'M' * 300}")])
