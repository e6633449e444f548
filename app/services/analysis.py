"""Phase 1's findings per photo, as the backend, `picaivid analyze` and `render --json` show them.

One function builds the per-photo view from the rows phase 1 wrote, so the photo-classification
service (`picaivid analyze`) and a full render report the same thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import AnalysisResult, Photo, RoomCluster
from app.db.session import session_scope
from app.media.audio import analyze_music
from app.media.types import BeatGrid
from app.phases.base import PhaseContext

__all__ = ["analyze_beats", "beats_report", "photo_entries"]


def photo_entries(s: Session, job_id: int) -> list[dict[str, Any]]:
    """Every photo of the job in upload order, with what phase 1 found (None before phase 1 ran)."""
    photos = list(s.scalars(select(Photo).where(Photo.job_id == job_id).order_by(Photo.position, Photo.id)))
    clusters = {c.id: c for c in s.scalars(select(RoomCluster).where(RoomCluster.job_id == job_id))}
    heroes = {
        hero
        for hero in s.scalars(select(AnalysisResult.hero_photo_id).where(AnalysisResult.job_id == job_id))
        if hero is not None
    }
    return [_photo_entry(p, clusters.get(p.room_cluster_id or -1), p.id in heroes) for p in photos]


def _photo_entry(photo: Photo, cluster: RoomCluster | None, hero: bool) -> dict[str, Any]:
    analysis = photo.analysis or {}
    scene = analysis.get("scene") or {}
    depth = analysis.get("depth") or {}
    return {
        "photo_id": photo.id,
        "file": photo.filename,
        "status": photo.status,
        "reject_reason": photo.reject_reason,
        "width": photo.width,
        "height": photo.height,
        "is_exterior": photo.is_exterior,
        "exterior_probability": scene.get("exterior_probability"),
        "room_label": photo.resolved_room_label,
        "room_label_confidence": _label_confidence(photo, scene),
        "room_label_source": photo.label_source,
        # The classifier's own answer, even where a given label won or it was too unsure to label.
        "classified_room": scene.get("room_label"),
        "classified_room_guess": scene.get("room_guess", scene.get("room_label")),
        "scene_source": scene.get("source"),
        "cluster": cluster.cluster_index if cluster else None,
        "cluster_room_type": cluster.room_type if cluster else None,
        "hero": hero,
        "selected": bool(analysis.get("selected")),
        "duplicate_of": analysis.get("duplicate_of"),
        "quality": {
            "sharpness": photo.sharpness,
            "exposure": photo.exposure_score,
            "composition": photo.composition_score,
            "base_score": photo.base_score,
            "final_score": photo.final_score,
            "tilt_degrees": photo.tilt_degrees,
        },
        "text_regions": analysis.get("text_regions") or [],
        "depth_source": depth.get("source"),
    }


def _label_confidence(photo: Photo, scene: dict[str, Any]) -> float | None:
    """1.0 for a label a person gave (backend, folder, edit); the classifier's confidence otherwise."""
    if photo.label_source in ("backend", "override"):
        return 1.0
    value = scene.get("label_confidence")
    return None if value is None else float(value)


def job_photo_entries(ctx: PhaseContext, job_id: int) -> list[dict[str, Any]]:
    with session_scope(ctx.sessions) as s:
        return photo_entries(s, job_id)


def analyze_beats(path: Path, models: Any) -> BeatGrid:
    """Beats, tempo, meter and downbeats of one music file, with the beat model of `models` (a
    `ModelRegistry`) when it has one: the same analysis phase 3 runs."""
    beat_model = getattr(models, "beats", None) if models is not None else None
    return analyze_music(path, beat_model=beat_model)


def beats_report(grid: BeatGrid) -> dict[str, Any]:
    """`picaivid beats --json`: the grid plus the figures a person checks first."""
    d = grid.to_dict()
    d["bpm"] = d["tempo"]
    d["beat_count"] = len(grid.beats)
    d["bar_count"] = len(grid.downbeats)
    return d
