"""Phase 3 entry point: reads rendered clips and the music, writes a new timeline version."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Clip, ClipStatus, Edit, Job, Photo, RoomCluster, Timeline, TimelineClip
from app.db.session import session_scope
from app.errors import PhaseOrderError
from app.media.audio import MusicCheck, analyze_samples, default_grid, inspect_music
from app.media.types import BeatGrid
from app.orchestrator import get_job
from app.phases.base import PhaseContext, PhaseResult
from app.phases.timeline.planner import (
    TIMELINE_EDIT_TYPES,
    ClipCandidate,
    TimelineDirectives,
    TimelinePlan,
    directives_from_edits,
    is_confident_exterior,
    plan_timeline,
)
from app.phases.timeline.storyboard import write_storyboard
from app.storage import keys

PHASE = 3


def beat_grid_for(job: Job, ctx: PhaseContext, workdir: Path) -> tuple[BeatGrid, MusicCheck | None]:
    """The grid cuts snap to: the music's beats, or a DEFAULT_BPM grid (no music / beat sync off); and the
    music as checked (`inspect_music`: decode errors, silence gaps, its digest for phase 4), if any."""
    settings = ctx.settings
    if job.music_uri:
        music = ctx.storage.local_path(ctx.storage.resolve_key(job.music_uri), workdir / "cache")
        if job.enable_beat_sync:
            check = inspect_music(music)
            grid = analyze_samples(check.samples, check.sample_rate, beat_model=_beat_model(ctx))
            return grid, check
        # Beat sync off: the music still plays, cut on a steady grid; only its length is needed.
        check = inspect_music(music, sample_rate=8000)
        return default_grid(settings.DEFAULT_BPM, check.duration), check
    length = (job.target_length or settings.DEFAULT_TARGET_LENGTH) + 30.0
    return default_grid(settings.DEFAULT_BPM, length), None


def _beat_model(ctx: PhaseContext) -> object | None:
    """The process's beat activation model (BeatNet) when it loaded, else None (classical tracker)."""
    models = ctx.get_components().models
    return getattr(models, "beats", None) if models is not None else None


def music_details(check: MusicCheck | None) -> dict[str, object]:
    """What phase 3 records about the music it checked; phase 4 compares `music_sha256` with its file."""
    if check is None:
        return {}
    return {
        "music_sha256": check.digest,
        "music_decode_errors": check.decode_errors,
        "music_silence_gaps": [list(g) for g in check.silence_gaps],
        "music_analysed_seconds": round(check.duration, 3),
        "music_longer_than": None if check.longer_than is None else round(check.longer_than, 3),
    }


def clip_candidates(s: Session, job_id: int) -> list[ClipCandidate]:
    """The clips the planner may place: rendered, of photos not excluded (phase 3 and timeline edits)."""
    # An excluded photo's clip may still exist (an exclude edit re-runs only phase 3 when the photo is no
    # room's hero, keeping the clip so that re-including it needs no render); it is never shown.
    rows = s.execute(
        select(Clip, Photo, RoomCluster)
        .join(Photo, Photo.id == Clip.photo_id)
        .outerjoin(RoomCluster, RoomCluster.id == Clip.room_cluster_id)
        .where(Clip.job_id == job_id, Clip.status == ClipStatus.RENDERED, Photo.exclude.is_(False))
        .order_by(Clip.id)
    ).all()
    return [
        ClipCandidate(
            clip_id=clip.id,
            photo_id=photo.id,
            room_type=(cluster.room_type if cluster else photo.resolved_room_label) or "other",
            cluster_index=cluster.cluster_index if cluster else 10_000 + photo.id,
            is_hero=clip.is_hero,
            score=photo.final_score or 0.0,
            available=clip.duration or 0.0,
            motion_type=clip.motion_type or "",
            confident_exterior=_confident_exterior(photo),
        )
        for clip, photo, cluster in rows
    ]


def _confident_exterior(photo: Photo) -> bool:
    scene = (photo.analysis or {}).get("scene") or {}
    return is_confident_exterior(
        photo.label_source,
        photo.resolved_room_label,
        bool(photo.is_exterior),
        float(scene.get("exterior_probability", 0.0)),
    )


def timeline_directives(s: Session, job_id: int) -> TimelineDirectives:
    """The job's timeline edits (reorder, trim, set_transition), replayed oldest first, so that every
    re-plan (new music, new target, a photo excluded) keeps what the user asked for where it still applies."""
    payloads = s.scalars(
        select(Edit.payload).where(Edit.job_id == job_id, Edit.edit_type.in_(TIMELINE_EDIT_TYPES)).order_by(Edit.id)
    )
    return directives_from_edits(p for p in payloads if isinstance(p, dict))


def save_timeline(s: Session, job: Job, plan: TimelinePlan, grid: BeatGrid, *, source: str) -> Timeline:
    """Write `plan` as the job's newest timeline version.

    Idempotent per job generation: a redelivered phase 3 of the same run rewrites its own version
    instead of adding another.
    """
    existing = s.scalars(
        select(Timeline).where(
            Timeline.job_id == job.id, Timeline.generation == job.generation, Timeline.source == source
        )
    ).first()
    if existing is not None:
        timeline = existing
        timeline.clips.clear()
        s.flush()
    else:
        latest = s.scalar(select(func.max(Timeline.version)).where(Timeline.job_id == job.id)) or 0
        timeline = Timeline(job_id=job.id, version=latest + 1, source=source, generation=job.generation)
        s.add(timeline)
    for older in s.scalars(select(Timeline).where(Timeline.job_id == job.id, Timeline.version < timeline.version)):
        older.status = "superseded"
    timeline.status = "draft"
    timeline.beat_grid = grid.to_dict()
    timeline.total_duration = plan.total_duration
    timeline.music_offset = plan.music_offset
    timeline.target_length = job.target_length
    timeline.output_uri = None
    for pc in plan.clips:
        timeline.clips.append(
            TimelineClip(
                clip_id=pc.clip_id,
                order_index=pc.order_index,
                in_time=pc.in_time,
                out_time=pc.out_time,
                transition_type=pc.transition,
                transition_duration=pc.transition_duration,
                audio_policy="music" if job.music_uri else "silent",
                start_time=pc.start,
                end_time=pc.end,
                beats=pc.beats,
            )
        )
    s.flush()
    return timeline


def run(job_id: int, ctx: PhaseContext) -> PhaseResult:
    progress = ctx.progress(job_id, PHASE)
    workdir = ctx.workdir(job_id)
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id)
        candidates = clip_candidates(s, job_id)
        if not candidates:
            raise PhaseOrderError(f"job {job_id} has no rendered clips; run phase 2 first")
        target = job.target_length or ctx.settings.DEFAULT_TARGET_LENGTH
        directives = timeline_directives(s, job_id)
    progress.step(0, 3, "beat tracking")
    grid, music = beat_grid_for(job, ctx, workdir)
    progress.step(1, 3, "planning timeline")
    plan = plan_timeline(
        candidates,
        grid,
        target_length=target,
        transition_beats=ctx.settings.TRANSITION_BEATS,
        transition=ctx.settings.DEFAULT_TRANSITION,
        directives=directives,
    )
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        timeline = save_timeline(s, job, plan, grid, source="phase3")
        job.bpm = round(grid.tempo, 3)
        job.beat_offset = round(grid.beat_offset, 4)
        version = timeline.version
    progress.step(2, 3, "storyboard")
    board = write_storyboard(ctx, job_id, version, workdir / f"storyboard-v{version}.png")
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        job.storyboard_uri = ctx.storage.put_file(keys.storyboard(job_id, version), board, "image/png")
    progress.step(3, 3, "done")
    return PhaseResult(
        PHASE,
        details={
            "timeline_version": version,
            "tempo": round(grid.tempo, 2),
            "beat_source": grid.source,
            "beat_confidence": round(grid.confidence, 3),
            "meter": getattr(grid, "meter", None),
            "clips": len(plan.clips),
            "total_duration": plan.total_duration,
            "music_offset": plan.music_offset,
            "cut_times": plan.cut_times,
            "user_directives": not directives.is_empty(),
            **music_details(music),
        },
        warnings=list(getattr(grid, "warnings", []))
        + plan.warnings
        + (music.warnings(plan.music_offset, plan.music_offset + plan.total_duration) if music else []),
    )
