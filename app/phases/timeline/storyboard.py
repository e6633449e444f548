"""Builds the storyboard for a timeline version from the database: rooms with their photos (hero,
motion plan) and the beat grid with every clip's segment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.db.models import Clip, Photo, PhotoStatus, RoomCluster, Timeline
from app.db.session import session_scope
from app.errors import PicaividError, StorageError
from app.media.storyboard import (
    StoryboardOverlay,
    StoryboardPhoto,
    StoryboardRoom,
    StoryboardSegment,
    render_storyboard,
)
from app.media.types import BeatGrid, MotionPlan
from app.orchestrator import get_job
from app.phases.base import PhaseContext
from app.phases.timeline.planner import video_time_grid
from app.storage import keys


def write_storyboard(ctx: PhaseContext, job_id: int, version: int, out: Path) -> Path:
    width, height = ctx.settings.output_size
    cache = ctx.workdir(job_id) / "cache"
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id)
        timeline = s.scalars(select(Timeline).where(Timeline.job_id == job_id, Timeline.version == version)).one()
        clusters = list(
            s.scalars(select(RoomCluster).where(RoomCluster.job_id == job_id).order_by(RoomCluster.cluster_index))
        )
        photos = {
            p.id: p for p in s.scalars(select(Photo).where(Photo.job_id == job_id, Photo.status == PhotoStatus.OK))
        }
        clips_by_photo = {c.photo_id: c for c in s.scalars(select(Clip).where(Clip.job_id == job_id))}
        clips_by_id = {c.id: c for c in clips_by_photo.values()}

        def thumb(photo_id: int) -> Path | None:
            try:
                return ctx.storage.local_path(keys.thumbnail(job_id, photo_id), cache)
            except StorageError:
                return None

        # Rows follow the tour: a room's first appearance on the timeline; rooms not shown come last.
        first_seen: dict[int, int] = {}
        for tc in timeline.clips:
            clip = clips_by_id.get(tc.clip_id) if tc.clip_id else None
            if clip is not None and clip.room_cluster_id is not None:
                first_seen.setdefault(clip.room_cluster_id, tc.order_index)
        clusters.sort(key=lambda c: (first_seen.get(c.id, 10_000), c.cluster_index))
        rooms: list[StoryboardRoom] = []
        for cluster in clusters:
            members: list[StoryboardPhoto] = []
            for pid in cluster.member_photo_ids or []:
                photo, clip, image = photos.get(pid), clips_by_photo.get(pid), thumb(pid)
                if photo is None or image is None:
                    continue
                plan = MotionPlan.from_dict(clip.motion_plan) if clip and clip.motion_plan else None
                members.append(
                    StoryboardPhoto(
                        image=image,
                        photo_id=pid,
                        is_hero=bool(clip and clip.is_hero),
                        motion_label=clip_label(clip),
                        score=photo.final_score,
                        plan=plan,
                    )
                )
            if members:
                members.sort(key=lambda p: (not p.is_hero, -(p.score or 0)))
                rooms.append(StoryboardRoom(label=f"{cluster.room_type} #{cluster.cluster_index + 1}", photos=members))
        segments = []
        for tc in timeline.clips:
            clip = clips_by_id.get(tc.clip_id) if tc.clip_id else None
            photo = photos.get(clip.photo_id) if clip and clip.photo_id else None
            segments.append(
                StoryboardSegment(
                    start=tc.start_time or 0.0,
                    end=tc.end_time or 0.0,
                    label=(photo.resolved_room_label if photo else None) or "clip",
                    photo_id=clip.photo_id if clip and clip.photo_id else -1,
                    motion=clip.motion_type or "" if clip else "",
                    transition=tc.transition_type or "cut",
                )
            )
        grid = (
            video_time_grid(
                BeatGrid.from_dict(timeline.beat_grid), timeline.music_offset or 0.0, timeline.total_duration or 0.0
            )
            if timeline.beat_grid
            else None
        )
        title = (
            f"{job.listing_id} - job {job_id}, timeline v{version}: {len(segments)} clips, "
            f"{timeline.total_duration or 0:.1f} s" + (f" at {grid.tempo:.1f} BPM" if grid else "")
        )
        overlays = storyboard_overlays(job, timeline.total_duration or 0.0, ctx.settings.output_size)
    return render_storyboard(
        out, rooms, beat_grid=grid, segments=segments, title=title, output_aspect=width / height, overlays=overlays
    )


def storyboard_overlays(job: Any, duration: float, output_size: tuple[int, int]) -> list[StoryboardOverlay]:
    """The first deliverable's overlay layers as timeline bars ("title card: Sunny family home")."""
    from app.media.deliverables import ListingFacts, specs_or_default
    from app.media.overlays import build_layers, template_for_job

    if duration <= 0:
        return []
    spec = specs_or_default(job.deliverables, output_size)[0]
    try:
        layers = build_layers(
            ListingFacts.from_dict(job.listing_facts),
            spec,
            duration=duration,
            template=template_for_job(job.template_type),
        )
    except PicaividError:  # facts phase 4 would refuse too; the storyboard just shows no overlays
        return []
    out = []
    for layer in layers:
        kind = type(layer).__name__
        name = {"TitleCard": "title card", "LowerThird": "lower third", "EndCard": "end card"}.get(kind, kind.lower())
        texts = [t for t in layer.texts() if t]
        out.append(StoryboardOverlay(layer.start, layer.end, f"{name}: {texts[0]}" if texts else name))
    return out


def clip_label(clip: Any) -> str:
    """A photo card's caption: its camera move and the renderer that made the clip, with the rungs the
    ladder stepped down from ("push_in / parallax (after ltx2)")."""
    if clip is None or not clip.motion_type:
        return "not shown"
    if not clip.model_used:
        return clip.motion_type
    failed = [a.get("renderer") for a in clip.render_log or [] if isinstance(a, dict) and not a.get("passed")]
    after = f" (after {', '.join(str(f) for f in failed)})" if failed else ""
    return f"{clip.motion_type} / {clip.model_used}{after}"
