"""Phase 1 entry point.

Reads every photo once, scores it, decides its room, groups rooms, picks heroes and writes a clip
row with a motion plan for every photo worth showing. All rows are written in one transaction, so a
crash leaves the previous state and a re-run converges to the same rows: clusters and analysis rows
are replaced, clip rows are upserted by photo (a clip whose plan did not change keeps its render).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import AnalysisResult, Clip, ClipStatus, Photo, PhotoStatus, RoomCluster
from app.db.session import session_scope
from app.errors import ImageRejectedError, NoUsablePhotosError
from app.media.clustering import ClusterInput, choose_hero, cluster_rooms
from app.media.deliverables import DeliverableSpec, frame_size, specs_or_default
from app.media.images import UNKNOWN_ROOM, fingerprint_distance, load_photo, photo_fingerprint, resize_max
from app.media.motion import plan_motion
from app.media.quality import QualityScores, featureless_reason, score_quality
from app.media.scene import SceneGuess, classify_scene, resolve_room_label
from app.media.text_regions import TextRegion, detect_text_regions
from app.orchestrator import get_job
from app.phases.analyze.depth import DepthRecord, photo_depth, store_depth
from app.phases.analyze.selection import NOT_NEEDED, select_for_target
from app.phases.base import PhaseContext, PhaseResult
from app.phases.timeline.planner import ClipCandidate, is_confident_exterior
from app.storage import keys

PHASE = 1

log = logging.getLogger(__name__)
#: Analysis works on a copy this size: enough for features and saliency, cheap on memory.
ANALYSIS_MAX_SIDE = 1024
THUMB_MAX_SIDE = 320
#: dHash distance at or below which two photos are the same shot.
DUPLICATE_DISTANCE = 4
MIN_CLIP_SECONDS, MAX_CLIP_SECONDS = 3.0, 10.0
#: A re-plan keeps a clip's rendered footage when it is at least this fraction of the newly planned length.
KEEP_FOOTAGE = 0.85


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
    #: Text and logos found in the photo (watermarks, MLS banners, agent signs); masked out of room
    #: matching and listed in the photo's analysis.
    text_regions: list[TextRegion] = field(default_factory=list)
    #: CLIP's unit image embedding when the model ran: ranks candidate pairs for room matching.
    embedding: np.ndarray | None = None


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
    output_size: tuple[int, int] | None = None,
) -> tuple[dict[str, Any], float]:
    """A clip's motion plan (as stored) and footage seconds, framed for `output_size` (default
    OUTPUT_RESOLUTION; phase 1 passes the first deliverable's frame). Shared with the swap_hero edit,
    which must plan a new hero exactly as phase 1 would, or a later phase-1 re-run would render it again."""
    out_w, out_h = output_size or settings.output_size
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


def format_plans(
    settings: Settings,
    rgb: np.ndarray,
    specs: Sequence[DeliverableSpec],
    *,
    photo_id: int,
    size: tuple[int, int],
    is_exterior: bool,
    quality: QualityScores,
    is_hero: bool,
) -> dict[str, dict[str, Any]]:
    """The camera plan per requested frame format: each framed for its own aspect (a landscape photo in
    9:16 pans across instead of cropping its middle), so phase 4 renders every format from the photo."""
    plans: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec.format in plans:
            continue
        w, h = frame_size(spec, settings.output_size)
        plans[spec.format] = plan_motion(
            rgb,
            output_aspect=w / h,
            is_exterior=is_exterior,
            quality=quality,
            seed=photo_id,
            output_height=h,
            is_hero=is_hero,
            source_size=size,
        ).to_dict()
    return plans


def _thumbnail(ctx: PhaseContext, job_id: int, photo_id: int, rgb: np.ndarray, workdir: Any) -> None:
    thumb = resize_max(rgb, THUMB_MAX_SIDE)
    path = workdir / f"thumb-{photo_id}.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    ctx.storage.put_file(keys.thumbnail(job_id, photo_id), path, "image/jpeg")


@dataclass
class _JobPhoto:
    photo_id: int
    uri: str
    filename: str
    override: str | None
    given_label: str | None
    exclude: bool
    #: The reason a photo was refused at ingest (too big, a link out of the folder): nothing was stored.
    ingest_rejected: str | None = None


@dataclass
class _Inventory:
    """What the photo loop found: analysed photos, rejected ones (with reasons), excluded ones."""

    analysed: list[_Analysed] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)
    excluded: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _load_or_reason(ctx: PhaseContext, uri: str, workdir: Path) -> tuple[np.ndarray, int, int] | str:
    """The analysis copy of a photo, or why it cannot be shown: it does not decode safely
    (`ImageRejectedError`), or it is featureless (a blank frame, a "coming soon" card, a gradient)."""
    try:
        small, width, height = load_analysis_copy(ctx, uri, workdir)
    except ImageRejectedError as exc:
        return exc.reason + (f": {exc.detail}" if exc.detail else "")
    why = featureless_reason(small)
    if why is not None:
        return f"featureless: {why}"
    return small, width, height


def _models(ctx: PhaseContext) -> Any:
    return ctx.get_components().models


def _scene(ctx: PhaseContext, small: np.ndarray) -> tuple[SceneGuess, np.ndarray | None]:
    """Interior/exterior and room type: CLIP zero-shot when its weights are here, else the heuristics;
    and CLIP's image embedding (None without CLIP). The guess's `source` says which produced it
    ("clip:<repo>@<revision>" or "heuristic:v2")."""
    models = _models(ctx)
    clip = getattr(models, "clip", None) if models is not None else None
    heuristic = classify_scene(small)
    if clip is None:
        return heuristic, None
    try:
        result = clip([small])[0]
    except Exception:  # a model failure costs the photo its model labels, never the job
        log.warning("CLIP failed; using the heuristic scene labels", exc_info=True)
        return heuristic, None
    guess = SceneGuess(
        is_exterior=result.is_exterior,
        exterior_probability=float(result.exterior_prob),
        room_label=result.room_label,
        label_confidence=float(result.room_confidence),
        source=result.source,
        features={**heuristic.features, "heuristic_exterior_probability": heuristic.exterior_probability},
        room_guess=result.room_label,
    )
    return guess, np.asarray(result.embedding, np.float32)


def _text_regions(ctx: PhaseContext, small: np.ndarray) -> list[TextRegion]:
    """Text and logo regions by PP-OCR when the reader loaded; none otherwise (matching then relies on
    its overlay filter alone)."""
    models = _models(ctx)
    reader = getattr(models, "ocr", None) if models is not None else None
    if reader is None:
        return []
    try:
        return detect_text_regions(small, reader)
    except Exception:  # OCR failing costs the photo its text mask, never the job
        log.warning("text detection failed; matching without a text mask", exc_info=True)
        return []


#: A classified room label only votes for its cluster's room type; it never keeps two photos apart
#: (`cluster_rooms` makes labels at >= 0.7 hard constraints, and ~5 % of the heuristic's labels above
#: 0.8 are still wrong on held-out listings).
_CLASSIFIED_LABEL_WEIGHT_MAX = 0.69


def _cluster_label_confidence(a: _Analysed) -> float:
    if a.label_source in ("backend", "override"):
        return 1.0
    return min(a.scene.label_confidence, _CLASSIFIED_LABEL_WEIGHT_MAX)


def _analyse(ctx: PhaseContext, photo: _JobPhoto, small: np.ndarray, size: tuple[int, int]) -> _Analysed:
    quality = score_quality(small)
    scene, embedding = _scene(ctx, small)
    label, source = resolve_room_label(photo.override or photo.given_label, scene)
    if photo.override and source == "backend":
        source = "override"  # a user's edit of the label wins over the backend's
    return _Analysed(
        photo_id=photo.photo_id,
        filename=photo.filename,
        rgb=small,
        width=size[0],
        height=size[1],
        quality=quality,
        scene=scene,
        label=label,
        label_source=source,
        fingerprint=photo_fingerprint(small),
        final_score=_final_score(quality, size[0], size[1], ctx.settings.output_size[1]),
        text_regions=_text_regions(ctx, small),
        embedding=embedding,
    )


def _analyse_photos(ctx: PhaseContext, job_id: int, photos: list[_JobPhoto], workdir: Path) -> _Inventory:
    progress = ctx.progress(job_id, PHASE)
    found = _Inventory()
    for i, photo in enumerate(photos):
        progress.step(i, len(photos) + 2, f"photo {i + 1}/{len(photos)}")
        if photo.ingest_rejected:
            found.rejected[photo.photo_id] = photo.ingest_rejected
            found.warnings.append(f"skipped {photo.filename}: {photo.ingest_rejected}")
            continue
        if photo.exclude:
            found.excluded.append(photo.photo_id)
            continue
        loaded = _load_or_reason(ctx, photo.uri, workdir)
        if isinstance(loaded, str):
            found.rejected[photo.photo_id] = loaded
            found.warnings.append(f"skipped {photo.filename}: {loaded}")
            continue
        small, width, height = loaded
        found.analysed.append(_analyse(ctx, photo, small, (width, height)))
        _thumbnail(ctx, job_id, photo.photo_id, small, workdir)
    if not found.analysed:
        detail = "; ".join(f"{r}" for r in list(found.rejected.values())[:3])
        raise NoUsablePhotosError(
            f"no usable photo: {len(found.rejected)} rejected, {len(found.excluded)} excluded"
            + (f" ({detail})" if detail else "")
        )
    return found


#: Cosine similarity of CLIP embeddings above which a SIFT-verified near-duplicate pair is the same
#: shot (a re-upload, a burst); below it the pixels agree but the content may not (two crops).
SAME_SHOT_COSINE = 0.92


#: A verified pair is one picture (a re-upload, a re-crop, a re-exposure) when one plane-to-plane map
#: explains nearly all its matches over most of the frame. Measured on the sample rooms: a 88 % re-crop
#: at 1.3x brightness: homography, 329 inliers, ratio 0.90, coverage 0.62; two views of one room from
#: different spots: fundamental matrices, ratio <= 0.81, coverage <= 0.53.
_SAME_PICTURE_RATIO = 0.85
_SAME_PICTURE_COVERAGE = 0.55
_SAME_PICTURE_INLIERS = 100


def _same_picture(pm: dict[str, Any]) -> bool:
    if not pm.get("verified"):
        return False
    if pm.get("model") == "translation":
        return True
    return (
        pm.get("model") == "homography"
        and float(pm.get("inlier_ratio", 0)) >= _SAME_PICTURE_RATIO
        and float(pm.get("coverage", 0)) >= _SAME_PICTURE_COVERAGE
        and int(pm.get("inliers", 0)) >= _SAME_PICTURE_INLIERS
    )


def _verified_same_shots(clusters: list[Any], analysed: list[_Analysed]) -> set[tuple[int, int]]:
    """Pairs room matching verified as the same picture (`_same_picture`: `clustering`'s near-duplicate
    model, or one homography explaining nearly every match over most of the frame), confirmed by CLIP's
    embeddings where the model ran."""
    embedding = {a.photo_id: a.embedding for a in analysed}
    same: set[tuple[int, int]] = set()
    for cluster in clusters:
        for pm in cluster.pair_metrics:
            if not _same_picture(pm):
                continue
            a, b = int(pm["a"]), int(pm["b"])
            ea, eb = embedding.get(a), embedding.get(b)
            if ea is not None and eb is not None and float(np.dot(ea, eb)) < SAME_SHOT_COSINE:
                continue
            same.add((min(a, b), max(a, b)))
    return same


def _find_duplicates(
    analysed: list[_Analysed], warnings: list[str], verified: set[tuple[int, int]] | None = None
) -> dict[int, int]:
    """Same shot twice (re-uploads, bursts): worse photo id -> better photo id (the better one is shown).
    Found by perceptual hash, or by room matching's SIFT-verified near-duplicates (`verified`, which
    also catch a re-crop or re-exposure the hash misses)."""
    duplicates: dict[int, int] = {}
    for i, a in enumerate(analysed):
        for b in analysed[i + 1 :]:
            if b.photo_id in duplicates or a.photo_id in duplicates:
                continue
            pair = (min(a.photo_id, b.photo_id), max(a.photo_id, b.photo_id))
            if pair in (verified or set()) or fingerprint_distance(a.fingerprint, b.fingerprint) <= DUPLICATE_DISTANCE:
                worse, better = (a, b) if a.final_score < b.final_score else (b, a)
                duplicates[worse.photo_id] = better.photo_id
                warnings.append(f"{worse.filename} duplicates {better.filename}; showing the better one")
    return duplicates


def _choose_heroes(
    clusters: list[Any], analysed: list[_Analysed], duplicates: dict[int, int], manual_heroes: dict[int, int]
) -> dict[int, int]:
    """Cluster index -> hero photo id: a user's choice (swap_hero) wins over the score."""
    quality_by_id = {a.photo_id: a.final_score for a in analysed}
    heroes: dict[int, int] = {}
    for index, cluster in enumerate(clusters):
        member_ids = [int(m) for m in cluster.member_ids]
        members = [m for m in member_ids if m not in duplicates] or member_ids
        chosen = [m for m in members if m in manual_heroes]
        if chosen:
            # Re-analysing must not undo a swap (the latest swap wins when a re-label put two chosen
            # photos in one room).
            heroes[index] = max(chosen, key=lambda m: (manual_heroes[m], -member_ids.index(m)))
            continue
        heroes[index] = int(choose_hero(cluster, {m: quality_by_id[m] for m in members}))  # type: ignore[call-overload]
    return heroes


def _select(
    shown: list[_Analysed],
    clusters: list[Any],
    cluster_of: dict[int, int],
    heroes: tuple[set[int], set[int]],
    target: float,
) -> list[_Analysed]:
    """The shown photos that get a clip (as many as `target` can use, plus a margin: `selection`).
    `heroes`: every room's hero, and those a user chose (always selected after the opener)."""
    hero_ids, chosen = heroes
    candidates = [
        ClipCandidate(
            clip_id=a.photo_id,
            photo_id=a.photo_id,
            room_type=clusters[cluster_of[a.photo_id]].room_type or a.label,
            cluster_index=cluster_of[a.photo_id],
            is_hero=a.photo_id in hero_ids,
            score=a.final_score,
            available=0.0,
            confident_exterior=is_confident_exterior(
                a.label_source, a.label, a.scene.is_exterior, a.scene.exterior_probability
            ),
        )
        for a in shown
    ]
    keep = select_for_target(candidates, target, pinned=hero_ids & chosen)
    return [a for a in shown if a.photo_id in keep]


@dataclass
class _Plan:
    """Everything phase 1 writes, decided before the write transaction."""

    inventory: _Inventory
    duplicates: dict[int, int]
    clusters: list[Any]
    cluster_of: dict[int, int]
    heroes: dict[int, int]
    selected: list[_Analysed]
    plans: dict[int, dict[str, Any]]
    durations: dict[int, float]
    #: Depth maps stored for photos that get a clip (photo id -> record).
    depth: dict[int, DepthRecord] = field(default_factory=dict)
    #: Photo id -> {frame format -> camera plan} (`format_plans`).
    format_plans: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def hero_ids(self) -> set[int]:
        return set(self.heroes.values())


def run(job_id: int, ctx: PhaseContext) -> PhaseResult:
    settings = ctx.settings
    workdir = ctx.workdir(job_id)
    progress = ctx.progress(job_id, PHASE)
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id)
        target = job.target_length or settings.DEFAULT_TARGET_LENGTH
        specs = specs_or_default(job.deliverables, settings.output_size, settings.TARGET_LOUDNESS_LUFS)
        rows = list(s.scalars(select(Photo).where(Photo.job_id == job_id).order_by(Photo.position)))
        photos = [
            _JobPhoto(
                p.id,
                p.s3_uri,
                p.filename or f"photo {p.id}",
                p.room_override,
                p.room_label,
                p.exclude,
                (p.reject_reason or "rejected") if (p.analysis or {}).get("ingest_rejected") else None,
            )
            for p in rows
        ]
        manual_heroes = {p.id: rank for p in rows if (rank := manual_hero_rank(p.manual_metadata)) is not None}

    found = _analyse_photos(ctx, job_id, photos, workdir)
    progress.step(len(photos), len(photos) + 2, "clustering rooms")
    # A label from the backend (or a user) is a hard constraint; a guessed one only votes.
    clusters = cluster_rooms(
        [
            ClusterInput(
                id=a.photo_id,
                rgb=a.rgb,
                label=None if a.label == UNKNOWN_ROOM else a.label,
                is_exterior=a.scene.is_exterior,
                label_confidence=_cluster_label_confidence(a),
                text_regions=a.text_regions,
                embedding=a.embedding,
            )
            for a in found.analysed
        ]
    )
    cluster_of = {int(m): idx for idx, c in enumerate(clusters) for m in c.member_ids}  # type: ignore[call-overload]
    duplicates = _find_duplicates(found.analysed, found.warnings, _verified_same_shots(clusters, found.analysed))
    heroes = _choose_heroes(clusters, found.analysed, duplicates, manual_heroes)
    shown = [a for a in found.analysed if a.photo_id not in duplicates]
    selected = _select(shown, clusters, cluster_of, (set(heroes.values()), set(manual_heroes)), target)
    if len(selected) < len(shown):
        found.warnings.append(
            f"{len(shown) - len(selected)} photo(s) not needed for the {target:g} s target: rendering "
            f"{len(selected)} of {len(shown)} (a longer target shows more)"
        )

    progress.step(len(photos) + 1, len(photos) + 2, "depth and motion")
    plan = _Plan(found, duplicates, clusters, cluster_of, heroes, selected, {}, {})
    plan.depth = _depth_step(ctx, job_id, selected, {p.photo_id: p.uri for p in photos}, workdir)
    primary = frame_size(specs[0], settings.output_size)
    for a in selected:
        hero = a.photo_id in plan.hero_ids
        plan.plans[a.photo_id], plan.durations[a.photo_id] = clip_plan(
            settings,
            a.rgb,
            photo_id=a.photo_id,
            size=(a.width, a.height),
            is_exterior=a.scene.is_exterior,
            quality=a.quality,
            is_hero=hero,
            target=target,
            clip_count=len(selected),
            output_size=primary,
        )
        plan.format_plans[a.photo_id] = format_plans(
            settings,
            a.rgb,
            specs,
            photo_id=a.photo_id,
            size=(a.width, a.height),
            is_exterior=a.scene.is_exterior,
            quality=a.quality,
            is_hero=hero,
        )

    with session_scope(ctx.sessions) as s:
        _write(s, job_id, plan)
    progress.step(len(photos) + 2, len(photos) + 2, "done")
    return PhaseResult(
        PHASE,
        details={
            "photos": len(photos),
            "analysed": len(found.analysed),
            "rejected": len(found.rejected),
            "excluded": len(found.excluded),
            "duplicates": len(duplicates),
            "clusters": len(clusters),
            "clips": len(selected),
            "not_needed": len(shown) - len(selected),
            "label_sources": sorted({a.label_source for a in found.analysed}),
            "scene_source": found.analysed[0].scene.source,
            "manual_heroes": sorted(h for h in plan.hero_ids if h in manual_heroes),
        },
        warnings=found.warnings,
    )


def _depth_step(
    ctx: PhaseContext, job_id: int, selected: list[_Analysed], uris: dict[int, str], workdir: Path
) -> dict[int, DepthRecord]:
    """A depth map for every photo that gets a clip (see `depth.py`), stored as an artifact."""
    found: dict[int, DepthRecord] = {}
    for a in selected:
        depth = photo_depth(ctx, uris[a.photo_id], a.rgb, workdir)
        if depth is not None:
            found[a.photo_id] = store_depth(ctx, job_id, a.photo_id, depth, workdir)
    return found


def _write(s: Session, job_id: int, plan: _Plan) -> None:
    """Phase 1's rows, in the caller's (single) transaction: clusters and analysis results replaced,
    photos updated, clips upserted by photo."""
    s.execute(delete(AnalysisResult).where(AnalysisResult.job_id == job_id))
    s.execute(delete(RoomCluster).where(RoomCluster.job_id == job_id))
    s.flush()
    cluster_rows = _write_clusters(s, job_id, plan.clusters, plan)
    # A clip with an unchanged plan whose footage is nearly as long as now planned, or longer, keeps its
    # length (and so its render): phase 3 fits clips to the footage they have, and a re-run for a longer
    # target then renders only the clips it adds.
    existing = {c.photo_id: c for c in s.scalars(select(Clip).where(Clip.job_id == job_id))}
    for photo_id, seconds in plan.durations.items():
        old = existing.get(photo_id)
        if (
            old is not None
            and old.motion_plan == plan.plans[photo_id]
            and (old.duration or 0.0) >= KEEP_FOOTAGE * seconds
        ):
            plan.durations[photo_id] = float(old.duration or seconds)
    by_id = {a.photo_id: a for a in plan.inventory.analysed}
    for photo in s.scalars(select(Photo).where(Photo.job_id == job_id)):
        _write_photo(photo, plan, by_id.get(photo.id), cluster_rows)
    _write_analysis_results(s, job_id, plan, cluster_rows)
    for planned_photo, stale in existing.items():
        if planned_photo not in plan.plans:
            s.delete(stale)
    for a in plan.selected:
        _upsert_clip(s, job_id, a, plan, existing.get(a.photo_id), cluster_rows)


#: Depth spread (variance of normalised inverse depth) above which a room has enough depth for 3-D motion.
DEPTH_3D_VARIANCE = 0.005


def motion_tier(depth: DepthRecord | None) -> tuple[str, str]:
    """(tier, model_recommendation) of a room from its hero's depth: "3d" rooms get depth-aware motion
    (LTX-2 on GPU workers, else parallax), flat ones (a wall close-up, no depth) Ken Burns."""
    if depth is None or depth.variance < DEPTH_3D_VARIANCE:
        return "2d", "ken_burns"
    return "3d", "ltx2,parallax"


def _cluster_depth_variance(cluster: Any, plan: _Plan) -> float | None:
    values = [plan.depth[m].variance for m in cluster.member_ids if m in plan.depth]
    return round(float(np.mean(values)), 5) if values else None


def _write_clusters(s: Session, job_id: int, clusters: list[Any], plan: _Plan) -> list[RoomCluster]:
    rows: list[RoomCluster] = []
    for index, cluster in enumerate(clusters):
        row = RoomCluster(
            job_id=job_id,
            room_type=cluster.room_type,
            confidence_tier=cluster.confidence_tier,
            sfm_eligible=cluster.sfm_eligible,
            depth_variance=_cluster_depth_variance(cluster, plan),
            image_count=len(cluster.member_ids),
            overlap_score=round(float(cluster.overlap_score), 4),
            cluster_index=index,
            member_photo_ids=list(cluster.member_ids),
        )
        s.add(row)
        rows.append(row)
    s.flush()
    return rows


def _write_photo(photo: Photo, plan: _Plan, a: _Analysed | None, cluster_rows: list[RoomCluster]) -> None:
    rejected = plan.inventory.rejected
    if photo.id in rejected:
        photo.status, photo.reject_reason = PhotoStatus.REJECTED, rejected[photo.id]
        photo.room_cluster_id = None
        return
    if a is None:  # excluded by the user
        photo.status, photo.reject_reason, photo.room_cluster_id = PhotoStatus.OK, None, None
        return
    selected = photo.id in plan.plans
    spare = not selected and photo.id not in plan.duplicates
    photo.status, photo.reject_reason = PhotoStatus.OK, NOT_NEEDED if spare else None
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
    photo.room_cluster_id = cluster_rows[plan.cluster_of[photo.id]].id
    photo.analysis = {
        "quality": a.quality.to_dict(),
        "quality_source": "heuristic:v1",
        "scene": {
            "is_exterior": a.scene.is_exterior,
            "exterior_probability": round(a.scene.exterior_probability, 4),
            "room_label": a.scene.room_label,
            "room_guess": a.scene.room_guess,
            "label_confidence": round(a.scene.label_confidence, 4),
            "source": a.scene.source,
        },
        "text_regions": [r.to_dict() for r in a.text_regions],
        "duplicate_of": plan.duplicates.get(photo.id),
        "selected": selected,
        "depth": plan.depth[photo.id].as_dict() if photo.id in plan.depth else None,
    }


def _write_analysis_results(s: Session, job_id: int, plan: _Plan, cluster_rows: list[RoomCluster]) -> None:
    for index, cluster in enumerate(plan.clusters):
        hero = plan.heroes[index]
        hero_plan = plan.plans.get(hero, {})
        tier, recommendation = motion_tier(plan.depth.get(hero))
        s.add(
            AnalysisResult(
                job_id=job_id,
                room_cluster_id=cluster_rows[index].id,
                hero_photo_id=hero,
                recommended_motion=hero_plan.get("motion_type"),
                allowed_motion_types=hero_plan.get("allowed", []),
                recommended_duration=plan.durations.get(hero),
                tier=tier,
                model_recommendation=recommendation,
                debug_metrics={
                    "pair_metrics": _jsonable(cluster.pair_metrics),
                    "rationale": hero_plan.get("rationale", ""),
                    "members": _jsonable(list(cluster.member_ids)),
                },
            )
        )


def _upsert_clip(
    s: Session, job_id: int, a: _Analysed, plan: _Plan, clip: Clip | None, cluster_rows: list[RoomCluster]
) -> None:
    plan_dict = plan.plans[a.photo_id]
    duration = plan.durations[a.photo_id]
    if clip is None:
        clip = Clip(job_id=job_id, photo_id=a.photo_id, status=ClipStatus.PENDING, render_log=[])
        s.add(clip)
    if clip.motion_plan != plan_dict or clip.duration != duration:
        clip.status = ClipStatus.PENDING
    clip.room_cluster_id = cluster_rows[plan.cluster_of[a.photo_id]].id
    clip.source_photo_ids = [a.photo_id]
    clip.motion_plan = plan_dict
    clip.format_plans = plan.format_plans.get(a.photo_id, {})
    clip.motion_type = plan_dict["motion_type"]
    clip.duration = duration
    clip.is_hero = a.photo_id in plan.hero_ids
    clip.tier = "2d"


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
