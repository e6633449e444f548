"""Creating jobs.

* `create_job` (the CLI's): the job owns copies of its inputs in storage (deterministic keys under
  `jobs/<id>/input/`), so it can be re-run after the user's folder is gone, and a worker on another
  machine can read them. Each photo is checked before it is copied (a regular, readable file within
  `MAX_IMAGE_BYTES`; `scan_photo_folder` already refused links leading out of the folder): a photo that
  fails is recorded as a rejected row with its reason and nothing of it is stored.
* `create_job_from_uris` (the API's): the inputs already sit in the configured bucket or storage root
  and are referenced in place.
"""

from __future__ import annotations

import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from app.config import Settings
from app.db.models import Job, JobStatus, Photo, PhotoStatus
from app.db.session import session_scope
from app.errors import (
    AudioError,
    ImageRejectedError,
    InvalidInputError,
    NoUsablePhotosError,
    PicaividError,
    StorageError,
)
from app.media import depth_io
from app.media.audio import check_music_samples, load_music
from app.media.deliverables import DeliverableSpec, ListingFacts
from app.media.images import check_photo_file, scan_photo_folder
from app.orchestrator import ensure_phase_rows
from app.phases.base import PhaseContext
from app.storage import MissingArtifactError, RefusedKeyError, keys

log = logging.getLogger(__name__)

#: Shortest music we accept: phase 3 needs a few bars to find a tempo.
MIN_MUSIC_SECONDS = 4.0
#: `photos.analysis` marker of a photo refused at ingest (nothing stored): phase 1 keeps it rejected.
INGEST_REJECTED = "ingest_rejected"
#: Column sizes of the backend's schema (`jobs.listing_id`, `photos.filename`).
_LISTING_ID_CHARS = 128
_FILENAME_CHARS = 255


@dataclass(frozen=True)
class PhotoInput:
    path: Path
    room_label: str | None = None
    exclude: bool = False
    manual_metadata: dict[str, Any] | None = None
    #: "reason: detail" when the file must not be read (a link out of the photos folder).
    rejected: str | None = None


def check_music(path: Path) -> float:
    """Fail fast, before any rendering, on music phase 3 could not use. Returns its duration."""
    samples = check_music_samples(load_music(path, sample_rate=8000), 8000, min_seconds=MIN_MUSIC_SECONDS)
    return samples.size / 8000.0


def photos_from_folder(folder: Path) -> list[PhotoInput]:
    """Every file in `folder` (room labels from sub-folder names). Non-images are kept so that phase 1
    can name each skipped file with its reason."""
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder")
    found = [PhotoInput(path=e.path, room_label=e.label, rejected=e.rejected) for e in scan_photo_folder(folder)]
    if not found:
        raise NoUsablePhotosError(f"{folder} contains no files")
    return found


def display_filename(name: str) -> str:
    """A file name as stored in `photos.filename` and shown to people: bytes that are not UTF-8 (old zip
    archives, Latin-1 disks) become U+FFFD instead of breaking the database write, and a name longer
    than the column is cut, keeping its extension."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if len(text) <= _FILENAME_CHARS:
        return text
    stem, dot, ext = text.rpartition(".")
    ext = f".{ext}" if dot and stem and len(ext) <= 16 else ""
    return text[: _FILENAME_CHARS - len(ext) - 1] + "…" + ext


def _check_listing_id(listing_id: str) -> None:
    if not listing_id.strip():
        raise InvalidInputError("listing_id is empty")
    if len(listing_id) > _LISTING_ID_CHARS:
        raise InvalidInputError(
            f"listing id {listing_id[:40]!r}… is longer than {_LISTING_ID_CHARS} characters; pass a shorter one"
        )


def ingest_rejection(item: PhotoInput, max_bytes: int) -> str | None:
    """Why `item` must not be copied into storage ("reason: detail"), or None. Runs before any copy,
    so a 200 MB file or a FIFO is refused by `stat` alone."""
    if item.rejected:
        return item.rejected
    try:
        check_photo_file(item.path, max_bytes=max_bytes)
    except ImageRejectedError as exc:
        return exc.reason + (f": {exc.detail}" if exc.detail else "")
    return None


def _refuse_if_nothing_usable(photos: list[PhotoInput], refused: list[str | None]) -> None:
    """Fail before creating anything when every photo was refused at ingest (phase 1 could only fail)."""
    usable = [i for i, r in zip(photos, refused, strict=True) if r is None and not i.exclude]
    if usable or not any(refused):
        return
    reasons = "; ".join(f"{display_filename(i.path.name)}: {r}" for i, r in zip(photos, refused, strict=True) if r)
    count = sum(r is not None for r in refused)
    raise NoUsablePhotosError(f"no usable photo: {count} rejected ({reasons[:300]})")


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
    deliverables: list[DeliverableSpec] | None = None,
    listing_facts: ListingFacts | None = None,
    voiceover: Path | None = None,
) -> int:
    """Register a job and copy its inputs into storage. Returns the job id.

    `deliverables` (default: one branded cut at OUTPUT_RESOLUTION), the listing's facts (what the
    branded cuts show) and an optional voice-over (transcribed to captions, music ducked under it)."""
    if not photos:
        raise NoUsablePhotosError("a job needs at least one photo")
    _check_listing_id(listing_id)
    if target_length is not None and not (5.0 <= target_length <= 600.0):
        raise InvalidInputError(f"target length {target_length:g} s is outside 5-600 s")
    settings = ctx.settings
    refused = [ingest_rejection(item, settings.MAX_IMAGE_BYTES) for item in photos]
    _refuse_if_nothing_usable(photos, refused)
    if music is not None:
        check_music(music)
    if voiceover is not None:
        check_voiceover(voiceover)
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
        for position, (item, reason) in enumerate(zip(photos, refused, strict=True)):
            s.add(_ingest_photo(ctx, job_id, position, item, reason))
        if music is not None:
            job.music_uri = ctx.storage.put_file(keys.input_music(job_id, music.name), music)
        if voiceover is not None:
            job.voiceover_uri = ctx.storage.put_file(keys.input_voiceover(job_id, voiceover.name), voiceover)
        job.deliverables = [d.to_dict() for d in deliverables or []]
        job.listing_facts = _store_logo(ctx, job_id, listing_facts or ListingFacts()).to_dict()
        ensure_phase_rows(s, job)
    return job_id


def _store_logo(ctx: PhaseContext, job_id: int, facts: ListingFacts) -> ListingFacts:
    """A logo given as a local file is copied into storage; the facts then name its storage URI."""
    from dataclasses import replace

    if not facts.logo_uri or "://" in facts.logo_uri:
        return facts
    path = Path(facts.logo_uri)
    check_photo_file(path, max_bytes=ctx.settings.MAX_IMAGE_BYTES)
    uri = ctx.storage.put_file(keys.input_logo(job_id, path.name), path)
    return replace(facts, logo_uri=uri)


def check_voiceover(path: Path) -> None:
    """Fail fast, before any rendering, on a voice-over phase 4 could not use (missing, not audio)."""
    from app.media.voiceover import load_voiceover

    if not path.is_file():
        raise InvalidInputError(f"voice-over file {path} does not exist")
    load_voiceover(path)


def load_listing_facts(path: Path) -> ListingFacts:
    """`--listing FILE`: the listing's facts as JSON (address, price, beds, baths, sqft, headline,
    agent_name, agent_phone, agent_email, brokerage, logo), with a clear error for a bad file."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"listing file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"listing file {path.name} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"listing file {path.name} must hold a JSON object")
    logo = data.pop("logo", None)
    if logo is not None:
        logo_path = (path.parent / str(logo)).resolve()
        if not logo_path.is_file():
            raise InvalidInputError(f"listing logo {logo} does not exist (relative to {path.parent})")
        data["logo_uri"] = str(logo_path)
    return ListingFacts.from_dict(data)


def _ingest_depth_sidecar(ctx: PhaseContext, photo_key: str, photo: Path) -> None:
    """A depth map that came with the photo (``NAME.depth.png`` …) is stored beside it for phase 1."""
    sidecar = depth_io.sidecar_path(photo)
    try:
        if sidecar is None or sidecar.is_symlink() or sidecar.stat().st_size > ctx.settings.MAX_IMAGE_BYTES:
            return
        suffix = sidecar.name[len(photo.stem) :]
        ctx.storage.put_file(keys.depth_sidecar(photo_key, suffix), sidecar)
    except (OSError, PicaividError) as exc:  # a depth map is an extra: the photo goes on without it
        log.warning("depth sidecar %s not stored: %s", sidecar.name if sidecar else "?", exc)


def _ingest_photo(ctx: PhaseContext, job_id: int, position: int, item: PhotoInput, reason: str | None) -> Photo:
    """The photo's row, its file copied into storage, or, when refused, a rejected row and no copy
    (its URI names the key it would have had, which holds nothing)."""
    key = keys.input_photo(job_id, position, item.path.name)
    photo = Photo(
        job_id=job_id,
        room_label=item.room_label,
        exclude=item.exclude,
        manual_metadata=item.manual_metadata,
        position=position,
        filename=display_filename(item.path.name),
    )
    if reason is None:
        photo.s3_uri = ctx.storage.put_file(key, item.path)
        _ingest_depth_sidecar(ctx, key, item.path)
    else:
        photo.s3_uri = ctx.storage.uri(key)
        photo.status, photo.reject_reason = PhotoStatus.REJECTED, reason
        photo.analysis = {INGEST_REJECTED: True}
    return photo


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


def _short(uri: str, limit: int = 120) -> str:
    return repr(uri) if len(uri) <= limit else repr(uri[: limit - 1] + "…")


def _named(field_name: str, uri: str, exc: Exception) -> str:
    text = str(exc)
    return f"{field_name}: {text}" if uri in text or _short(uri) in text else f"{field_name} {_short(uri)}: {text}"


def _input_key(ctx: PhaseContext, uri: str, field_name: str) -> str:
    """Resolve `uri` to a storage key and make sure the object exists. What the URI itself gets wrong
    (scheme, bucket, traversal, a name no file system or bucket can hold, S3 refusing that key) is a
    one-line `InvalidInputError` naming the field and the URI (the API answers 422); only storage that
    cannot answer (S3 unreachable or failing, a disk error) is a `StorageError` (503)."""
    try:
        # resolve_key is the SSRF / traversal guard: only this bucket or this root, no http://, no `..`.
        key = ctx.storage.resolve_key(uri)
        found = ctx.storage.exists(key)
    except (InvalidInputError, RefusedKeyError) as exc:  # e.g. S3 403 on that key: the input, not the service
        raise InvalidInputError(_named(field_name, uri, exc)) from exc
    except StorageError as exc:
        raise StorageError(f"cannot reach storage to check {field_name}: {exc}") from exc
    except OSError as exc:  # an OS error the storage did not classify: the storage, not the input
        raise StorageError(f"cannot reach storage to check {field_name}: {type(exc).__name__}") from exc
    if not found:
        raise InvalidInputError(f"{field_name} {_short(uri)} does not exist")
    return key


def _check_music_uri(ctx: PhaseContext, uri: str) -> str:
    """Fetch the music once and decode it, so a broken track fails the request instead of phase 3
    minutes later. Returns the storage key."""
    key = _input_key(ctx, uri, "music_uri")
    with tempfile.TemporaryDirectory(prefix="picaivid-music-check-") as tmp:
        try:
            path = ctx.storage.local_path(key, Path(tmp))
        except (InvalidInputError, MissingArtifactError, RefusedKeyError) as exc:  # gone since the check
            raise InvalidInputError(_named("music_uri", uri, exc)) from exc
        try:
            check_music(path)
        except AudioError as exc:
            raise AudioError(f"music_uri {_short(uri)}: {exc}") from exc
    return key


def _check_voiceover_uri(ctx: PhaseContext, uri: str) -> str:
    """Fetch the voice-over once and decode it (a clear 422 now, not a failed phase 4 later)."""
    from app.media.voiceover import load_voiceover

    key = _input_key(ctx, uri, "voiceover_uri")
    with tempfile.TemporaryDirectory(prefix="picaivid-voiceover-check-") as tmp:
        try:
            path = ctx.storage.local_path(key, Path(tmp))
        except (InvalidInputError, MissingArtifactError, RefusedKeyError) as exc:
            raise InvalidInputError(_named("voiceover_uri", uri, exc)) from exc
        try:
            load_voiceover(path)
        except PicaividError as exc:
            raise InvalidInputError(f"voiceover_uri {_short(uri)}: {exc}") from exc
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
    deliverables: list[DeliverableSpec] | None = None,
    listing_facts: ListingFacts | None = None,
    voiceover_uri: str | None = None,
) -> int:
    """Register a job whose inputs already sit in storage, referencing them in place (no copy: Rails
    owns the uploads). Every URI is validated (`Storage.resolve_key`) and checked to exist, and the music
    is decoded, before anything is written. With `enqueue`, "run this job" is staged in the outbox in the
    same transaction; the caller sends it after commit (`Dispatcher.flush`). Returns the job id."""
    if not photos:
        raise NoUsablePhotosError("a job needs at least one photo")
    _check_listing_id(listing_id)
    if target_length is not None and not (5.0 <= target_length <= 600.0):
        raise InvalidInputError(f"target length {target_length:g} s is outside 5-600 s")
    if callback_url is not None:
        _check_callback_url(callback_url)

    # Cheap checks (scheme, bucket, traversal) for every URI before any network round trip.
    for i, ref in enumerate(photos):
        try:
            ctx.storage.resolve_key(ref.uri)
        except InvalidInputError as exc:
            raise InvalidInputError(_named(f"photos[{i}].uri", ref.uri, exc)) from exc
    with ThreadPoolExecutor(
        max_workers=min(_EXISTS_CHECK_THREADS, len(photos)), thread_name_prefix="picaivid-exists"
    ) as pool:
        photo_keys = list(
            pool.map(lambda item: _input_key(ctx, item[1].uri, f"photos[{item[0]}].uri"), enumerate(photos))
        )
    music_key = _check_music_uri(ctx, music_uri) if music_uri else None
    voiceover_key = _check_voiceover_uri(ctx, voiceover_uri) if voiceover_uri else None
    logo = (listing_facts or ListingFacts()).logo_uri
    if logo:
        _input_key(ctx, logo, "listing.logo_uri")

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
        job.voiceover_uri = ctx.storage.uri(voiceover_key) if voiceover_key else None
        job.deliverables = [d.to_dict() for d in deliverables or []]
        job.listing_facts = (listing_facts or ListingFacts()).to_dict()
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
                    filename=display_filename(key.rsplit("/", 1)[-1]),
                )
            )
        ensure_phase_rows(s, job)
        if enqueue:
            stage_run(s, job_id, reason="created")
    return job_id
