"""The JSON view of a job that `picaivid render/run/status --json` print (and the API will serve)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.db.models import Clip, Photo, PhotoStatus, Timeline
from app.db.session import session_scope
from app.errors import StorageError
from app.media.types import BeatGrid
from app.orchestrator import job_summary
from app.phases.base import PhaseContext
from app.phases.timeline.planner import video_time_grid
from app.services.analysis import photo_entries


def _local_copy(ctx: PhaseContext, uri: str | None, dest: Path | None) -> str | None:
    """Copy an artifact next to the user's output (or return its URI when there is no output)."""
    if not uri:
        return None
    if dest is None:
        return uri
    try:
        return str(ctx.storage.get_file(ctx.storage.resolve_key(uri), dest))
    except StorageError:
        return uri


def job_report(ctx: PhaseContext, job_id: int, *, output: Path | None = None) -> dict[str, Any]:
    with session_scope(ctx.sessions) as s:
        summary = job_summary(s, job_id)
        photos = {p.id: p for p in s.scalars(select(Photo).where(Photo.job_id == job_id))}
        clips = {c.id: c for c in s.scalars(select(Clip).where(Clip.job_id == job_id))}
        timeline = s.scalars(
            select(Timeline).where(Timeline.job_id == job_id).order_by(Timeline.version.desc())
        ).first()
        versions = list(s.scalars(select(Timeline.version).where(Timeline.job_id == job_id).order_by(Timeline.version)))
        tl: dict[str, Any] | None = None
        if timeline is not None:
            offset = timeline.music_offset or 0.0
            total = timeline.total_duration or 0.0
            grid = (
                video_time_grid(BeatGrid.from_dict(timeline.beat_grid), offset, total) if timeline.beat_grid else None
            )
            tl = {
                "version": timeline.version,
                "versions": versions,
                "status": timeline.status,
                "tempo": grid.tempo if grid else None,
                "beat_source": grid.source if grid else None,
                "beat_confidence": grid.confidence if grid else None,
                "meter": getattr(grid, "meter", None) if grid else None,
                "beats_per_bar": getattr(grid, "beats_per_bar", None) if grid else None,
                "music_offset": offset,
                "total_duration": total,
                # Beats in video time, so cuts can be checked against them directly.
                "beats": [round(b, 4) for b in grid.beats] if grid else [],
                "downbeats": [round(b, 4) for b in grid.downbeats] if grid else [],
                "clips": [],
            }
            for tc in timeline.clips:
                clip = clips.get(tc.clip_id) if tc.clip_id else None
                photo = photos.get(clip.photo_id) if clip and clip.photo_id else None
                tl["clips"].append(
                    {
                        "order": tc.order_index,
                        "clip_id": tc.clip_id,
                        "photo": photo.filename if photo else None,
                        "photo_id": photo.id if photo else None,
                        "room": photo.resolved_room_label if photo else None,
                        "start": tc.start_time,
                        "end": tc.end_time,
                        "beats": tc.beats,
                        "in_time": tc.in_time,
                        "out_time": tc.out_time,
                        "motion": clip.motion_type if clip else None,
                        "renderer": clip.model_used if clip else None,
                        # Every rung tried for this clip: [{"renderer", "passed", "reasons"}].
                        "attempts": _attempts(clip),
                        "transition": tc.transition_type,
                        "transition_duration": tc.transition_duration,
                    }
                )
        photo_list = photo_entries(s, job_id)
        skipped = [
            {"file": p.filename, "reason": p.reject_reason} for p in photos.values() if p.status == PhotoStatus.REJECTED
        ]
    summary["timeline"] = tl
    summary["photos"] = photo_list
    # For disclosure of AI-altered listing media (e.g. California AB 723): which clips a generative
    # model made.
    summary["ai_generated_clips"] = sorted(c.id for c in clips.values() if c.model_used in GENERATIVE_RENDERERS)
    summary["skipped_photos"] = sorted(skipped, key=lambda x: x["file"] or "")
    summary["phase_timings"] = {str(p["phase"]): p["duration_s"] for p in summary["phases"]}
    summary["warnings"] = [w["message"] if isinstance(w, dict) else str(w) for w in summary["warnings"]]
    summary["output"] = str(output) if output else summary.get("output_uri")
    # Named after the video (listing.poster.jpg beside listing.mp4): fixed names would overwrite a
    # user's own poster.jpg when --out sits in the photo folder.
    summary["poster"] = _local_copy(ctx, summary.get("poster_uri"), _beside(output, ".poster.jpg"))
    summary["storyboard"] = _local_copy(ctx, summary.get("storyboard_uri"), _beside(output, ".storyboard.png"))
    return summary


def _beside(video: Path | None, suffix: str) -> Path | None:
    return video.with_name(video.stem + suffix) if video else None


#: Renderers whose output is generated by a model rather than moved from the photo's own pixels.
GENERATIVE_RENDERERS = frozenset({"ltx2"})


def _attempts(clip: Clip | None) -> list[dict[str, Any]]:
    if clip is None:
        return []
    return [
        {
            "renderer": a.get("renderer"),
            "passed": bool(a.get("passed", a.get("ok", False))),
            "reasons": list(a.get("reasons") or ([a["reason"]] if a.get("reason") else [])),
        }
        for a in clip.render_log or []
        if isinstance(a, dict)
    ]
