"""Creating jobs. Used by the CLI today and by the API and Rails-shaped fleet later.

A job owns copies of its inputs in storage (deterministic keys under `jobs/<id>/input/`), so a job
can be re-run after the user's folder is gone, and a worker on another machine can read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.db.models import Job, JobStatus, Photo
from app.db.session import session_scope
from app.errors import InvalidInputError, NoUsablePhotosError
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


def create_job(ctx: PhaseContext, *, listing_id: str, photos: list[PhotoInput], music: Path | None,
               target_length: float | None = None, enable_beat_sync: bool | None = None,
               template_type: str | None = None, metadata: dict[str, Any] | None = None) -> int:
    """Register a job and copy its inputs into storage. Returns the job id."""
    if not photos:
        raise NoUsablePhotosError("a job needs at least one photo")
    if target_length is not None and not (5.0 <= target_length <= 600.0):
        raise InvalidInputError(f"target length {target_length:g} s is outside 5-600 s")
    if music is not None:
        check_music(music)
    settings = ctx.settings
    with session_scope(ctx.sessions) as s:
        job = Job(listing_id=listing_id, status=JobStatus.PENDING, current_phase=0,
                  template_type=template_type,
                  target_length=target_length or settings.DEFAULT_TARGET_LENGTH,
                  enable_beat_sync=(settings.ENABLE_BEAT_SYNC if enable_beat_sync is None
                                    else enable_beat_sync),
                  job_metadata=metadata or {}, warnings=[])
        s.add(job)
        s.flush()
        job_id = job.id
        for position, item in enumerate(photos):
            uri = ctx.storage.put_file(keys.input_photo(job_id, position, item.path.name), item.path)
            s.add(Photo(job_id=job_id, s3_uri=uri, room_label=item.room_label, exclude=item.exclude,
                        manual_metadata=item.manual_metadata, position=position, filename=item.path.name))
        if music is not None:
            job.music_uri = ctx.storage.put_file(keys.input_music(job_id, music.name), music)
        ensure_phase_rows(s, job)
    return job_id
