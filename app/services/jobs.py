"""Creating jobs.

* `create_job` (the CLI's): the job owns copies of its inputs in storage (deterministic keys under
  `jobs/<id>/input/`), so it can be re-run after the user's folder is gone, and a worker on another
  machine can read them.
* `create_job_from_uris` (the API's): the inputs already sit in the configured bucket or storage root
  and are referenced in place.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from app.config import Settings
from app.db.models import Job, JobStatus, Photo
from app.db.session import session_scope
from app.errors import AudioError, InvalidInputError, NoUsablePhotosError, StorageError
from app.media.audio import check_music_samples, load_music
from app.media.images import list_photo_files
from app.orchestrator import ensure_phase_rows
from app.phases.base import PhaseContext
from app.storage import keys

#: Shortest music we accept: phase 3 needs a few bars to find a tempo.
MIN_MUSIC_SECONDS = 4.0


@dataclass(frozen=True)
class PhotoInput:
    path: Path
    room_label: str | None = None
    exclude: bool = False
    manual_metadata: dict[str, Any] | None = None


def check_music(path: Path) -> float:
    """Fail fast, before any rendering, on music phase 3 could not use. Returns its duration."""
    samples = check_music_samples(load_music(path, sample_rate=8000), 8000, min_seconds=MIN_MUSIC_SECONDS)
    return samples.size / 8000.0


def photos_from_folder(folder: Path) -> list[PhotoInput]:
    """Every file in `folder` (room labels from sub-folder names). Non-images are kept so that phase 1
    can name each skipped file with its reason."""
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder")
    found = [PhotoInput(path=p, room_label=label) for p, label in list_photo_files(folder)]
    if not found:
        raise NoUsablePhotosError(f"{folder} contains no files")
    return found


def new_job(
    settings: Settings,
    *,
    listing_id: str,
    target_length: float | None,
    enable_beat_sync: bool | None,
    template_type: str | None,
    metadata: dict[str, Any] | None,
) -> Job:
    """A pending job row with the deployment's defaults filled in."""
    return Job(
        listing_id=listing_id,
        status=JobStatus.PENDING,
        current_phase=0,
        template_type=template_type,
        target_length=target_length or settings.DEFAULT_TARGET_LENGTH,
        enable_beat_sync=settings.ENABLE_BEAT_SYNC if enable_beat_sync is None else enable_beat_sync,
        job_metadata=metadata or {},
        warnings=[],
    )


def create_job(
    ctx: PhaseContext,
    *,
    listing_id: str,
    photos: list[PhotoInput],
    music: Path | None,
    target_length: float | None = None,
    enable_beat_sync: bool | None = None,
    template_type: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> int:
    """Register a job and copy its inputs into storage. Returns the job id."""
    if not photos:
        raise NoUsablePhotosError("a job needs at least one photo")
    if target_length is not None and not (5.0 <= target_length <= 600.0):
        raise InvalidInputError(f"target length {target_length:g} s is outside 5-600 s")
    if music is not None:
        check_music(music)
    settings = ctx.settings
    with session_scope(ctx.sessions) as s:
        job = new_job(
            settings,
            listing_id=listing_id,
            target_length=target_length,
            enable_beat_sync=enable_beat_sync,
            template_type=template_type,
            metadata=metadata,
        )
        s.add(job)
        s.flush()
        job_id = job.id
        for position, item in enumerate(photos):
            uri = ctx.storage.put_file(keys.input_photo(job_id, position, item.path.name), item.path)
            s.add(
                Photo(
                    job_id=job_id,
                    s3_uri=uri,
                    room_label=item.room_label,
                    exclude=item.exclude,
                    manual_metadata=item.manual_metadata,
                    position=position,
                    filename=item.path.name,
                )
            )
        if music is not None:
            job.music_uri = ctx.storage.put_file(keys.input_music(job_id, music.name), music)
        ensure_phase_rows(s, job)
    return job_id


# ---------------------------------------------------------------------------------------------
# Jobs from URIs (the API's, i.e. Rails'): inputs already sit in storage and are referenced in place
# ---------------------------------------------------------------------------------------------

#: Parallel HEAD requests when checking that a job's photos exist (boto3 clients are thread-safe; a
#: 200-photo listing on S3 would otherwise spend seconds in sequential round trips).
_EXISTS_CHECK_THREADS = 8


@dataclass(frozen=True)
class PhotoRef:
    """A photo that already sits in storage: `s3://<bucket>/key`, `file:///<root>/key` or a path under the
    local storage root."""

    uri: str
    room_label: str | None = None
    exclude: bool = False
    manual_metadata: dict[str, Any] | None = None


def _input_key(ctx: PhaseContext, uri: str, field_name: str) -> str:
    """Resolve `uri` to a storage key and make sure the object exists. Every failure is a one-line
    `InvalidInputError` naming the field and the URI (the API answers 422)."""

    def named(exc: Exception) -> str:
        text = str(exc)
        return f"{field_name}: {text}" if uri in text else f"{field_name} {uri!r}: {text}"

    try:
        # resolve_key is the SSRF / traversal guard: only this bucket or this root, no http://, no `..`.
        key = ctx.storage.resolve_key(uri)
    except (InvalidInputError, StorageError) as exc:
        raise InvalidInputError(named(exc)) from exc
    try:
        found = ctx.storage.exists(key)
    except (InvalidInputError, StorageError) as exc:  # e.g. S3 403 on that key: the input, not the service
        raise InvalidInputError(named(exc)) from exc
    except Exception as exc:  # endpoint unreachable and the like: transient, so 503 rather than 422
        raise StorageError(f"cannot reach storage to check {field_name}: {type(exc).__name__}") from exc
    if not found:
        raise InvalidInputError(f"{field_name} {uri!r} does not exist")
    return key


def _check_music_uri(ctx: PhaseContext, uri: str) -> str:
    """Fetch the music once and decode it, so a broken track fails the request instead of phase 3
    minutes later. Returns the storage key."""
    key = _input_key(ctx, uri, "music_uri")
    with tempfile.TemporaryDirectory(prefix="picaivid-music-check-") as tmp:
        try:
            path = ctx.storage.local_path(key, Path(tmp))
        except StorageError as exc:
            raise InvalidInputError(f"music_uri {uri!r}: {exc}") from exc
        try:
            check_music(path)
        except AudioError as exc:
            raise AudioError(f"music_uri {uri!r}: {exc}") from exc
    return key


def _check_callback_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInputError(f"callback_url {url!r} is not an http(s) URL")


def create_job_from_uris(
    ctx: PhaseContext,
    *,
    listing_id: str,
    photos: list[PhotoRef],
    music_uri: str | None = None,
    target_length: float | None = None,
    enable_beat_sync: bool | None = None,
    template_type: str | None = None,
    metadata: dict[str, Any] | None = None,
    callback_url: str | None = None,
    enqueue: bool = False,
) -> int:
    """Register a job whose inputs already sit in storage, referencing them in place (no copy: Rails
    owns the uploads). Every URI is validated (`Storage.resolve_key`) and checked to exist, and the music
    is decoded, before anything is written. With `enqueue`, "run this job" is staged in the outbox in the
    same transaction; the caller sends it after commit (`Dispatcher.flush`). Returns the job id."""
    if not photos:
        raise NoUsablePhotosError("a job needs at least one photo")
    if not listing_id.strip():
        raise InvalidInputError("listing_id is empty")
    if target_length is not None and not (5.0 <= target_length <= 600.0):
        raise InvalidInputError(f"target length {target_length:g} s is outside 5-600 s")
    if callback_url is not None:
        _check_callback_url(callback_url)

    # Cheap checks (scheme, bucket, traversal) for every URI before any network round trip.
    for i, ref in enumerate(photos):
        try:
            ctx.storage.resolve_key(ref.uri)
        except (InvalidInputError, StorageError) as exc:
            text = str(exc)
            raise InvalidInputError(
                f"photos[{i}].uri: {text}" if ref.uri in text else f"photos[{i}].uri {ref.uri!r}: {text}"
            ) from exc
    with ThreadPoolExecutor(
        max_workers=min(_EXISTS_CHECK_THREADS, len(photos)), thread_name_prefix="picaivid-exists"
    ) as pool:
        photo_keys = list(
            pool.map(lambda item: _input_key(ctx, item[1].uri, f"photos[{item[0]}].uri"), enumerate(photos))
        )
    music_key = _check_music_uri(ctx, music_uri) if music_uri else None

    from app.services.dispatch import stage_run  # the queue plumbing (boto3) only where it is used

    settings = ctx.settings
    with session_scope(ctx.sessions) as s:
        job = new_job(
            settings,
            listing_id=listing_id,
            target_length=target_length,
            enable_beat_sync=enable_beat_sync,
            template_type=template_type,
            metadata=metadata,
        )
        # Canonical URIs, so that workers on other machines resolve them the same way.
        job.music_uri = ctx.storage.uri(music_key) if music_key else None
        job.callback_url = callback_url
        s.add(job)
        s.flush()
        job_id = job.id
        for position, (ref, key) in enumerate(zip(photos, photo_keys, strict=True)):
            s.add(
                Photo(
                    job_id=job_id,
                    s3_uri=ctx.storage.uri(key),
                    room_label=ref.room_label,
                    exclude=ref.exclude,
                    manual_metadata=ref.manual_metadata,
                    position=position,
                    filename=key.rsplit("/", 1)[-1],
                )
            )
        ensure_phase_rows(s, job)
        if enqueue:
            stage_run(s, job_id, reason="created")
    return job_id
