"""Phase 1 entry point.

Reads every photo once, scores it, decides its room, groups rooms, picks heroes and writes a clip
row with a motion plan for every photo worth showing. All rows are written in one transaction, so a
crash leaves the previous state and a re-run converges to the same rows: clusters and analysis rows
are replaced, clip rows are upserted by photo (a clip whose plan did not change keeps its render).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import delete, select

from app.config import Settings
from app.db.models import AnalysisResult, Clip, ClipStatus, Photo, PhotoStatus, RoomCluster
from app.db.session import session_scope
from app.errors import ImageRejectedError, NoUsablePhotosError
from app.media.clustering import ClusterInput, choose_hero, cluster_rooms
from app.media.images import fingerprint_distance, load_photo, photo_fingerprint, resize_max
from app.media.motion import plan_motion
from app.media.quality import QualityScores, score_quality
from app.media.scene import SceneGuess, classify_scene, resolve_room_label
from app.orchestrator import get_job
from app.phases.base import PhaseContext, PhaseResult
from app.storage import keys

PHASE = 1
#: Analysis works on a copy this size: enough for features and saliency, cheap on memory.
ANALYSIS_MAX_SIDE = 1024
THUMB_MAX_SIDE = 320
#: dHash distance at or below which two photos are the same shot.
DUPLICATE_DISTANCE = 4
MIN_CLIP_SECONDS, MAX_CLIP_SECONDS = 3.0, 10.0


@dataclass
class _Analysed:
    photo_id: int
    filename: str
    rgb: np.ndarray  # analysis-size copy
    width: int
    height: int
    quality: QualityScores
    scene: SceneGuess
    label: str
    label_source: str
    fingerprint: str
    final_score: float


def _final_score(q: QualityScores, width: int, height: int, output_height: int) -> float:
    """Quality, discounted for photos too small to fill the frame (they look soft when scaled)."""
    resolution = min(1.0, min(width, height) / output_height) ** 0.35
    return round(float(q.base_score) * resolution, 4)


def planned_clip_seconds(target_length: float, clip_count: int, *, hero: bool) -> float:
    """Footage to render per clip. Phase 3 trims to whole beats, so render more than the average share."""
    share = target_length / max(1, clip_count)
    seconds = share * 1.6 + 0.8 + (0.5 if hero else 0.0)
    return round(min(MAX_CLIP_SECONDS, max(MIN_CLIP_SECONDS, seconds)), 2)


def manual_hero_rank(manual_metadata: dict[str, Any] | None) -> int | None:
    """None unless a user made this photo its room's hero (`manual_metadata["hero"]`, set by the
    swap_hero edit or by the backend). The rank (the swap's edit id) lets the latest choice win when two
    chosen photos end up in one room."""
    if not manual_metadata or not manual_metadata.get("hero"):
        return None
    try:
        return int(manual_metadata.get("hero_edit") or 0)
    except (TypeError, ValueError):
        return 0


def load_analysis_copy(ctx: PhaseContext, uri: str, workdir: Path) -> tuple[np.ndarray, int, int]:
    """The photo at `uri` as phase 1 analyses it: (analysis-size RGB copy, full width, full height)."""
    settings = ctx.settings
    local = ctx.storage.local_path(ctx.storage.resolve_key(uri), workdir / "cache")
    loaded = load_photo(local, max_pixels=settings.MAX_IMAGE_PIXELS, max_bytes=settings.MAX_IMAGE_BYTES)
    return resize_max(loaded.rgb, ANALYSIS_MAX_SIDE), loaded.width, loaded.height


def clip_plan(
    settings: Settings,
    rgb: np.ndarray,
    *,
    photo_id: int,
    size: tuple[int, int],
    is_exterior: bool,
    quality: QualityScores,
    is_hero: bool,
    target: float,
    clip_count: int,
) -> tuple[dict[str, Any], float]:
    """A clip's motion plan (as stored) and footage seconds. Shared with the swap_hero edit, which must
    plan a new hero exactly as phase 1 would, or a later phase-1 re-run would render it again."""
    out_w, out_h = settings.output_size
    # Planned on the analysis copy (viewports are resolution-independent); the zoom a photo can take
    # depends on its real size, hence source_size.
    plan = plan_motion(
        rgb,
        output_aspect=out_w / out_h,
        is_exterior=is_exterior,
        quality=quality,
        seed=photo_id,
        output_height=out_h,
        is_hero=is_hero,
        source_size=size,
    )
    return plan.to_dict(), planned_clip_seconds(target, clip_count, hero=is_hero)


def _thumbnail(ctx: PhaseContext, job_id: int, photo_id: int, rgb: np.ndarray, workdir: Any) -> None:
    thumb = resize_max(rgb, THUMB_MAX_SIDE)
    path = workdir / f"thumb-{photo_id}.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    ctx.storage.put_file(keys.thumbnail(job_id, photo_id), path, "image/jpeg")


def run(job_id: int, ctx: PhaseContext) -> PhaseResult:
    settings = ctx.settings
    out_h = settings.output_size[1]
    workdir = ctx.workdir(job_id)
    progress = ctx.progress(job_id, PHASE)
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id)
        target = job.target_length or settings.DEFAULT_TARGET_LENGTH
        rows = list(s.scalars(select(Photo).where(Photo.job_id == job_id).order_by(Photo.position)))
        photos = [
            (p.id, p.s3_uri, p.filename or f"photo {p.id}", p.room_override, p.room_label, p.exclude) for p in rows
        ]
        manual_heroes = {p.id: rank for p in rows if (rank := manual_hero_rank(p.manual_metadata)) is not None}

    warnings: list[str] = []
    rejected: dict[int, str] = {}
    analysed: list[_Analysed] = []
    excluded: list[int] = []
    for i, (photo_id, uri, filename, override, given_label, exclude) in enumerate(photos):
        progress.step(i, len(photos) + 2, f"photo {i + 1}/{len(photos)}")
        if exclude:
            excluded.append(photo_id)
            continue
        try:
            small, width, height = load_analysis_copy(ctx, uri, workdir)
        except ImageRejectedError as exc:
            reason = exc.reason + (f": {exc.detail}" if exc.detail else "")
            rejected[photo_id] = reason
            warnings.append(f"skipped {filename}: {reason}")
            continue
        quality = score_quality(small)
        scene = classify_scene(small)
        label, source = resolve_room_label(override or given_label, scene)
        if override and source == "backend":
            source = "override"  # a user's edit of the label wins over the backend's
        analysed.append(
            _Analysed(
                photo_id=photo_id,
                filename=filename,
                rgb=small,
                width=width,
                height=height,
                quality=quality,
                scene=scene,
                label=label,
                label_source=source,
                fingerprint=photo_fingerprint(small),
                final_score=_final_score(quality, width, height, out_h),
            )
        )
        _thumbnail(ctx, job_id, photo_id, small, workdir)

    if not analysed:
        detail = "; ".join(f"{r}" for r in list(rejected.values())[:3])
        raise NoUsablePhotosError(
            f"no usable photo: {len(rejected)} rejected, {len(excluded)} excluded" + (f" ({detail})" if detail else "")
        )

    # Same shot twice (re-uploads, bursts): keep the better one on screen.
    duplicates: dict[int, int] = {}
    for i, a in enumerate(analysed):
        for b in analysed[i + 1 :]:
            if b.photo_id in duplicates or a.photo_id in duplicates:
                continue
            if fingerprint_distance(a.fingerprint, b.fingerprint) <= DUPLICATE_DISTANCE:
                worse, better = (a, b) if a.final_score < b.final_score else (b, a)
                duplicates[worse.photo_id] = better.photo_id
                warnings.append(f"{worse.filename} duplicates {better.filename}; showing the better one")

    progress.step(len(photos), len(photos) + 2, "clustering rooms")
    by_id = {a.photo_id: a for a in analysed}
    # A label from the backend (or a user) is a hard constraint; a guessed one only votes.
    clusters = cluster_rooms(
        [
            ClusterInput(
                id=a.photo_id,
                rgb=a.rgb,
                label=a.label,
                is_exterior=a.scene.is_exterior,
                label_confidence=1.0 if a.label_source in ("backend", "override") else a.scene.label_confidence,
            )
            for a in analysed
        ]
    )
    quality_by_id = {a.photo_id: a.final_score for a in analysed}
    shown = [a for a in analysed if a.photo_id not in duplicates]
    heroes: dict[int, int] = {}
    for index, cluster in enumerate(clusters):
        member_ids = [int(m) for m in cluster.member_ids]  # type: ignore[call-overload]
        members = [m for m in member_ids if m not in duplicates] or member_ids
        chosen = [m for m in members if m in manual_heroes]
        if chosen:
            # A user's swap_hero wins over the score: re-analysing must not undo it (the latest swap
            # wins when a re-label put two chosen photos in one room).
            heroes[index] = max(chosen, key=lambda m: (manual_heroes[m], -member_ids.index(m)))
            continue
        heroes[index] = int(choose_hero(cluster, {m: quality_by_id[m] for m in members}))  # type: ignore[call-overload]

    progress.step(len(photos) + 1, len(photos) + 2, "planning motion")
    plans: dict[int, dict[str, Any]] = {}
    durations: dict[int, float] = {}
    cluster_of: dict[int, int] = {
        int(m): idx  # type: ignore[call-overload]
        for idx, c in enumerate(clusters)
        for m in c.member_ids
    }
    hero_ids = set(heroes.values())
    for a in shown:
        plans[a.photo_id], durations[a.photo_id] = clip_plan(
            settings,
            a.rgb,
            photo_id=a.photo_id,
            size=(a.width, a.height),
            is_exterior=a.scene.is_exterior,
            quality=a.quality,
            is_hero=a.photo_id in hero_ids,
            target=target,
            clip_count=len(shown),
        )

    with session_scope(ctx.sessions) as s:
        s.execute(delete(AnalysisResult).where(AnalysisResult.job_id == job_id))
        s.execute(delete(RoomCluster).where(RoomCluster.job_id == job_id))
        s.flush()
        cluster_rows: list[RoomCluster] = []
        for index, cluster in enumerate(clusters):
            row = RoomCluster(
                job_id=job_id,
                room_type=cluster.room_type,
                confidence_tier=cluster.confidence_tier,
                sfm_eligible=cluster.sfm_eligible,
                image_count=len(cluster.member_ids),
                overlap_score=round(float(cluster.overlap_score), 4),
                cluster_index=index,
                member_photo_ids=list(cluster.member_ids),
            )
            s.add(row)
            cluster_rows.append(row)
        s.flush()
        for photo in s.scalars(select(Photo).where(Photo.job_id == job_id)):
            if photo.id in rejected:
                photo.status, photo.reject_reason = PhotoStatus.REJECTED, rejected[photo.id]
                photo.room_cluster_id = None
                continue
            found = by_id.get(photo.id)
            if found is None:  # excluded by the user
                photo.status, photo.reject_reason, photo.room_cluster_id = PhotoStatus.OK, None, None
                continue
            a = found
            photo.status, photo.reject_reason = PhotoStatus.OK, None
            photo.width, photo.height = a.width, a.height
            photo.sharpness = round(a.quality.sharpness, 4)
            photo.exposure_score = round(a.quality.exposure, 4)
            photo.composition_score = round(a.quality.composition, 4)
            photo.base_score = round(a.quality.base_score, 4)
            photo.final_score = a.final_score
            photo.tilt_degrees = round(a.quality.tilt_degrees, 2)
            photo.is_exterior = a.scene.is_exterior
            photo.inferred_room_label = a.scene.room_label
            photo.resolved_room_label = a.label
            photo.label_source = a.label_source
            photo.fingerprint = a.fingerprint
            photo.room_cluster_id = cluster_rows[cluster_of[photo.id]].id
            photo.analysis = {
                "quality": a.quality.to_dict(),
                "quality_source": "heuristic:v1",
                "scene": {
                    "is_exterior": a.scene.is_exterior,
                    "exterior_probability": round(a.scene.exterior_probability, 4),
                    "room_label": a.scene.room_label,
                    "label_confidence": round(a.scene.label_confidence, 4),
                    "source": a.scene.source,
                },
                "duplicate_of": duplicates.get(photo.id),
            }
        for index, cluster in enumerate(clusters):
            hero = heroes[index]
            hero_plan = plans.get(hero, {})
            s.add(
                AnalysisResult(
                    job_id=job_id,
                    room_cluster_id=cluster_rows[index].id,
                    hero_photo_id=hero,
                    recommended_motion=hero_plan.get("motion_type"),
                    allowed_motion_types=hero_plan.get("allowed", []),
                    recommended_duration=durations.get(hero),
                    tier="2d",
                    model_recommendation="ken_burns",
                    debug_metrics={
                        "pair_metrics": _jsonable(cluster.pair_metrics),
                        "rationale": hero_plan.get("rationale", ""),
                        "members": _jsonable(list(cluster.member_ids)),
                    },
                )
            )
        existing = {c.photo_id: c for c in s.scalars(select(Clip).where(Clip.job_id == job_id))}
        for planned_photo, stale in existing.items():
            if planned_photo not in plans:
                s.delete(stale)
        for a in shown:
            plan_dict = plans[a.photo_id]
            duration = durations[a.photo_id]
            clip = existing.get(a.photo_id) or Clip(
                job_id=job_id, photo_id=a.photo_id, status=ClipStatus.PENDING, render_log=[]
            )
            if clip.id is None:
                s.add(clip)
            if clip.motion_plan != plan_dict or clip.duration != duration:
                clip.status = ClipStatus.PENDING
            clip.room_cluster_id = cluster_rows[cluster_of[a.photo_id]].id
            clip.source_photo_ids = [a.photo_id]
            clip.motion_plan = plan_dict
            clip.motion_type = plan_dict["motion_type"]
            clip.duration = duration
            clip.is_hero = a.photo_id in hero_ids
            clip.tier = "2d"
    progress.step(len(photos) + 2, len(photos) + 2, "done")
    return PhaseResult(
        PHASE,
        details={
            "photos": len(photos),
            "analysed": len(analysed),
            "rejected": len(rejected),
            "excluded": len(excluded),
            "duplicates": len(duplicates),
            "clusters": len(clusters),
            "clips": len(shown),
            "label_sources": sorted({a.label_source for a in analysed}),
            "scene_source": analysed[0].scene.source,
            "manual_heroes": sorted(h for h in hero_ids if h in manual_heroes),
        },
        warnings=warnings,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
