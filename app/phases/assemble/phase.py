"""Phase 4 entry point: the current timeline version becomes an H.264/AAC MP4 and a poster."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Clip, JobPhase, Timeline
from app.db.session import session_scope
from app.errors import AudioError, PhaseOrderError, StorageError
from app.media.assemble import AssemblySegment, MusicBed, assemble_video, extract_poster
from app.media.audio import music_digest
from app.orchestrator import get_job
from app.phases.base import PhaseContext, PhaseResult
from app.storage import keys

PHASE = 4


def current_timeline(s: Session, job_id: int) -> Timeline:
    timeline = s.scalars(select(Timeline).where(Timeline.job_id == job_id).order_by(Timeline.version.desc())).first()
    if timeline is None:
        raise PhaseOrderError(f"job {job_id} has no timeline; run phase 3 first")
    return timeline


def run(job_id: int, ctx: PhaseContext) -> PhaseResult:
    settings = ctx.settings
    width, height = settings.output_size
    workdir = ctx.workdir(job_id)
    cache = workdir / "cache"
    progress = ctx.progress(job_id, PHASE)
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id)
        timeline = current_timeline(s, job_id)
        version = timeline.version
        music_offset = timeline.music_offset or 0.0
        music_uri = job.music_uri
        checked = _checked_music_digest(s, job_id)
        segments: list[AssemblySegment] = []
        for tc in timeline.clips:
            clip = s.get(Clip, tc.clip_id) if tc.clip_id else None
            if clip is None or not clip.s3_uri:
                raise PhaseOrderError(f"timeline v{version} refers to a clip that is not rendered; re-run from phase 2")
            try:
                path = ctx.storage.local_path(ctx.storage.resolve_key(clip.s3_uri), cache)
            except StorageError as exc:
                raise PhaseOrderError(f"clip {clip.id} is missing from storage ({exc}); re-run from phase 2") from exc
            segments.append(
                AssemblySegment(
                    clip_path=path,
                    clip_in=tc.in_time or 0.0,
                    start=tc.start_time or 0.0,
                    end=tc.end_time or 0.0,
                    transition="cut" if tc.transition_type in (None, "none") else tc.transition_type,
                    transition_duration=tc.transition_duration or 0.0,
                )
            )
    if not segments:
        raise PhaseOrderError(f"timeline v{version} of job {job_id} is empty")
    music = None
    if music_uri:
        music_path = ctx.storage.local_path(ctx.storage.resolve_key(music_uri), cache)
        if checked is not None and music_digest(music_path) != checked:
            raise AudioError("the music file changed after phase 3 checked it; re-run from phase 3")
        music = MusicBed(path=music_path, offset=music_offset)
    out = workdir / f"video-v{version}.mp4"
    result = assemble_video(
        segments,
        out,
        width=width,
        height=height,
        fps=settings.OUTPUT_FPS,
        music=music,
        preset=settings.OUTPUT_X264_PRESET,
        crf=settings.OUTPUT_CRF,
        target_lufs=settings.TARGET_LOUDNESS_LUFS,
        target_tp=settings.TARGET_TRUE_PEAK_DBTP,
        progress=lambda f: progress.step(f, 1.0, "encoding"),
    )
    # The poster: the middle of the opening shot (the best exterior).
    first = segments[0]
    poster = extract_poster(out, workdir / f"poster-v{version}.jpg", at=max(0.0, (first.end - first.start) / 2))
    video_uri = ctx.storage.put_file(keys.output_video(job_id, version), out, "video/mp4")
    poster_uri = ctx.storage.put_file(keys.poster(job_id, version), poster, "image/jpeg")
    storyboard_uri = _storyboard_for(ctx, job_id, version)
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        job.output_uri, job.poster_uri, job.storyboard_uri = video_uri, poster_uri, storyboard_uri
        timeline = current_timeline(s, job_id)
        timeline.status = "rendered"
        timeline.output_uri = video_uri
    details = {
        "timeline_version": version,
        "output_uri": video_uri,
        "poster_uri": poster_uri,
        "duration": result.duration,
        "frame_count": result.frame_count,
        "encode_seconds": round(result.encode_seconds, 3),
        "transitions": [list(t) for t in result.transitions],
    }
    if result.loudness is not None:
        details["integrated_lufs"] = result.loudness.integrated_lufs
        details["true_peak_dbtp"] = result.loudness.true_peak_dbtp
    return PhaseResult(PHASE, details=details, warnings=list(result.warnings))


def _checked_music_digest(s: Session, job_id: int) -> str | None:
    """The digest of the music phase 3 decoded and checked (None for a job phase 3 ran on before it
    recorded one). Phase 4 plays only that music: no audio it did not check reaches the video."""
    details = s.scalar(select(JobPhase.details).where(JobPhase.job_id == job_id, JobPhase.phase == 3))
    value = details.get("music_sha256") if isinstance(details, dict) else None
    return value if isinstance(value, str) else None


def _storyboard_for(ctx: PhaseContext, job_id: int, version: int) -> str:
    """The storyboard of the version being delivered. Phase 3 draws one for its versions; a version an edit
    made (reorder, trim, transitions) gets its own here, so the storyboard always shows the video's cuts."""
    key = keys.storyboard(job_id, version)
    if ctx.storage.exists(key):
        return ctx.storage.uri(key)
    from app.phases.timeline.storyboard import write_storyboard

    board = write_storyboard(ctx, job_id, version, ctx.workdir(job_id) / f"storyboard-v{version}.png")
    return ctx.storage.put_file(key, board, "image/png")


def local_output(ctx: PhaseContext, job_id: int, dest: Path) -> Path:
    """Copy the job's delivered video to `dest` (the CLI's --out)."""
    with session_scope(ctx.sessions) as s:
        uri = get_job(s, job_id).output_uri
    if not uri:
        raise PhaseOrderError(f"job {job_id} has no output yet")
    return ctx.storage.get_file(ctx.storage.resolve_key(uri), dest)
