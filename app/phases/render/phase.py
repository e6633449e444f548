"""Phase 2 entry point. Renders clips one at a time and checkpoints each finished clip (row + artifact)
so that a crash or a re-delivery never renders a finished clip again."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Clip, ClipStatus, Job, Photo, utcnow
from app.db.session import session_scope
from app.errors import PicaividError, RenderCancelled
from app.media.deliverables import frame_size, specs_or_default
from app.media.images import load_photo
from app.media.types import MotionPlan
from app.media.validate import validate_clip
from app.orchestrator import get_job
from app.phases.base import PhaseContext, PhaseResult
from app.phases.render.renderers import ClipRenderer, RendererDeclined, RenderRequest
from app.storage import keys

PHASE = 2

log = logging.getLogger(__name__)


class ClipRenderError(PicaividError):
    """A clip cannot be rendered: it does not exist, or every renderer failed for it."""


class ClipRejectedError(ClipRenderError):
    """Every renderer failed or was rejected by the validator for one clip. The clip is marked failed with
    the reason; phase 2 leaves it out of the video with a warning (the job fails only when no clip is left)."""

    def __init__(self, clip_id: int, photo: str, reason: str) -> None:
        self.clip_id, self.photo, self.reason = clip_id, photo, reason
        super().__init__(f"clip {clip_id} could not be rendered ({reason})")


def renderer_chain(ctx: PhaseContext) -> list[ClipRenderer]:
    """The ladder this process runs, best first (the components the entry point built)."""
    return ctx.get_components().renderers


def render_key(
    photo_uri: str,
    plan: dict[str, object],
    duration: float,
    ctx: PhaseContext,
    renderer: ClipRenderer,
    depth_uri: str | None = None,
    size: tuple[int, int] | None = None,
) -> str:
    """Everything a clip made by `renderer` depends on. Equal keys mean the existing artifact can be reused;
    the renderer is part of it, so adding a renderer to the ladder leaves clips made by others valid."""
    width, height = size or ctx.settings.output_size
    material = json.dumps(
        {
            "photo": photo_uri,
            "plan": plan,
            "duration": round(duration, 4),
            "size": [width, height],
            "fps": ctx.settings.OUTPUT_FPS,
            "crf": ctx.settings.CLIP_CRF,
            "renderer": f"{renderer.name}@{renderer.version}",
            # Only renderers that use depth depend on it: new depth re-renders parallax clips alone.
            "depth": depth_uri if renderer.is_3d else None,
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class ClipOutcome:
    clip_id: int
    rendered: bool  # False when a checkpointed render was reused
    renderer: str
    seconds: float
    validation_score: float


@dataclass
class _ClipJob:
    """What rendering one clip needs, read in one transaction."""

    clip_id: int
    job_id: int
    photo_uri: str
    photo_name: str
    plan: dict[str, object]
    duration: float
    room_type: str | None
    depth_uri: str | None
    #: The first deliverable's frame (width, height): generated clips are made at this size, computed
    #: ones validated on a preview of its aspect (`clip_size`).
    frame: tuple[int, int] = (1920, 1080)


def clip_size(renderer: ClipRenderer, frame: tuple[int, int], settings: Settings) -> tuple[int, int]:
    """The size phase 2 renders `renderer`'s clip at. A generated clip (LTX-2) is stored and decoded by
    phase 4, so it is made at the frame size. A computed one (Ken Burns, parallax) is re-made by phase 4
    at every deliverable's own framing in its single encode, so phase 2 only renders a preview to
    validate, with the frame's aspect and a long side of PREVIEW_LONG_SIDE px."""
    if renderer.generative:
        return frame
    w, h = frame
    scale = min(1.0, settings.PREVIEW_LONG_SIDE / max(w, h))
    return max(16, 2 * round(w * scale / 2)), max(16, 2 * round(h * scale / 2))


def _reusable(ctx: PhaseContext, clip: Clip, job: _ClipJob, chain: list[ClipRenderer]) -> bool:
    if clip.status != ClipStatus.RENDERED or not clip.s3_uri or not clip.render_key:
        return False
    maker = next((r for r in chain if r.name == clip.model_used), None)
    if maker is None:
        return False
    size = clip_size(maker, job.frame, ctx.settings)
    key = render_key(job.photo_uri, job.plan, job.duration, ctx, maker, job.depth_uri, size)
    return clip.render_key == key and ctx.storage.exists(keys.clip(clip.job_id, clip.id, key))


def _claim(ctx: PhaseContext, clip_id: int, chain: list[ClipRenderer]) -> _ClipJob | ClipOutcome:
    """Mark the clip rendering (one more attempt), or return the outcome of its valid checkpoint."""
    with session_scope(ctx.sessions) as s:
        clip = s.get(Clip, clip_id)
        if clip is None or clip.photo_id is None:
            raise ClipRenderError(f"clip {clip_id} does not exist")
        photo = s.get(Photo, clip.photo_id)
        assert photo is not None
        depth = (photo.analysis or {}).get("depth") or {}
        job = _ClipJob(
            clip_id=clip_id,
            job_id=clip.job_id,
            photo_uri=photo.s3_uri,
            photo_name=photo.filename or f"photo {photo.id}",
            plan=dict(clip.motion_plan or {}),
            duration=float(clip.duration or 4.0),
            room_type=photo.resolved_room_label,
            depth_uri=depth.get("uri"),
            frame=_first_frame(s, clip.job_id, ctx.settings),
        )
        if _reusable(ctx, clip, job, chain):
            return ClipOutcome(clip_id, False, clip.model_used or "", 0.0, clip.validation_score or 0.0)
        clip.status = ClipStatus.RENDERING
        clip.render_attempts = (clip.render_attempts or 0) + 1
        return job


def _first_frame(s: Session, job_id: int, settings: Settings) -> tuple[int, int]:
    stored = s.scalar(select(Job.deliverables).where(Job.id == job_id))
    spec = specs_or_default(stored, settings.output_size, settings.TARGET_LOUDNESS_LUFS)[0]
    return frame_size(spec, settings.output_size)


def _load_depth(ctx: PhaseContext, job: _ClipJob) -> np.ndarray | None:
    if not job.depth_uri:
        return None
    from app.phases.analyze.depth import load_depth

    try:
        return load_depth(ctx, job.depth_uri, ctx.workdir(job.job_id))
    except Exception:  # a lost depth map costs the clip its parallax rung, not the clip
        log.warning("depth map %s unreadable", job.depth_uri, exc_info=True)
        return None


def _attempt(
    renderer: ClipRenderer, request: RenderRequest, source_rgb: np.ndarray, ctx: PhaseContext
) -> tuple[dict[str, Any], float]:
    """One rung of the ladder: render and validate. Returns the attempt record and the validation score."""
    settings = ctx.settings
    t0 = time.perf_counter()
    try:
        renderer.render(request)
    except RenderCancelled:
        raise
    except RendererDeclined as exc:
        return {"renderer": renderer.name, "passed": False, "declined": True, "reasons": [str(exc)]}, 0.0
    except Exception as exc:  # CUDA OOM, a model bug, ffmpeg: step down the ladder, never fail the job here
        if not isinstance(exc, PicaividError):
            log.warning("renderer %s failed", renderer.name, exc_info=True)
        return {"renderer": renderer.name, "passed": False, "reasons": [f"{type(exc).__name__}: {exc}"[:300]]}, 0.0
    seconds = time.perf_counter() - t0
    check = validate_clip(
        request.out_path,
        source_rgb,
        request.plan,
        width=request.width,
        height=request.height,
        fps=settings.OUTPUT_FPS,
        duration=request.duration,
    )
    record = {
        "renderer": renderer.name,
        "passed": check.passed,
        "reasons": check.reasons,
        "score": round(check.score, 4),
        "seconds": round(seconds, 3),
        "validate_seconds": round(time.perf_counter() - t0 - seconds, 3),
    }
    return record, check.score


def render_clip(ctx: PhaseContext, clip_id: int, *, cancel: threading.Event | None = None) -> ClipOutcome:
    """Render one clip down the ladder unless its checkpoint (row + artifact, same render key) exists.

    `cancel` (fleet workers): when set, the renderer stops at its next frame and `RenderCancelled`
    propagates; the clip row keeps status "rendering" for the worker to hand back."""
    settings = ctx.settings
    chain = renderer_chain(ctx)
    claimed = _claim(ctx, clip_id, chain)
    if isinstance(claimed, ClipOutcome):
        return claimed
    job = claimed
    workdir = ctx.workdir(job.job_id)
    source = load_photo(ctx.storage.local_path(ctx.storage.resolve_key(job.photo_uri), workdir / "cache"))
    depth = _load_depth(ctx, job)
    attempts: list[dict[str, Any]] = []
    for renderer in chain:
        width, height = clip_size(renderer, job.frame, settings)
        key = render_key(job.photo_uri, job.plan, job.duration, ctx, renderer, job.depth_uri, (width, height))
        out = workdir / "clips" / f"{clip_id}-{key[:12]}.mp4"
        request = RenderRequest(
            rgb=source.rgb,
            plan=MotionPlan.from_dict(job.plan),
            out_path=out,
            width=width,
            height=height,
            fps=settings.OUTPUT_FPS,
            duration=job.duration,
            preset=settings.CLIP_X264_PRESET,
            crf=settings.CLIP_CRF,
            cancel=cancel,
            depth=depth,
            room_type=job.room_type,
            seed_key=key,
        )
        record, score = _attempt(renderer, request, source.rgb, ctx)
        attempts.append(record)
        if record["passed"]:
            _checkpoint(ctx, job, renderer, key, out, attempts, score)
            return ClipOutcome(clip_id, True, renderer.name, float(record["seconds"]), score)
        out.unlink(missing_ok=True)
    reason = "; ".join(f"{a['renderer']}: {', '.join(a['reasons']) or 'rejected'}" for a in attempts)
    with session_scope(ctx.sessions) as s:
        clip = s.get(Clip, clip_id)
        assert clip is not None
        clip.status = ClipStatus.FAILED
        clip.error = reason
        clip.render_log = attempts
    raise ClipRejectedError(clip_id, job.photo_name, reason)


def _checkpoint(
    ctx: PhaseContext,
    job: _ClipJob,
    renderer: ClipRenderer,
    key: str,
    out: Path,
    attempts: list[dict[str, Any]],
    score: float,
) -> None:
    uri = ctx.storage.put_file(keys.clip(job.job_id, job.clip_id, key), out, "video/mp4")
    with session_scope(ctx.sessions) as s:
        clip = s.get(Clip, job.clip_id)
        assert clip is not None
        clip.status = ClipStatus.RENDERED
        clip.s3_uri = uri
        clip.render_key = key
        clip.model_used = renderer.name
        clip.is_3d = renderer.is_3d
        clip.validation_score = round(score, 4)
        clip.render_seconds = attempts[-1]["seconds"]
        clip.rendered_at = utcnow()
        clip.render_log = attempts
        clip.error = None
        clip.lease_owner = clip.lease_expires_at = None
    out.unlink(missing_ok=True)


def run(job_id: int, ctx: PhaseContext) -> PhaseResult:
    """Render every clip of the job. A clip no renderer can produce is left out with a warning (phase 3
    only places rendered clips); the phase fails only when not one clip could be rendered."""
    with session_scope(ctx.sessions) as s:
        get_job(s, job_id)
        clip_ids = list(s.scalars(select(Clip.id).where(Clip.job_id == job_id).order_by(Clip.id)))
    if not clip_ids:
        raise ClipRenderError(f"job {job_id} has no planned clips; run phase 1 first")
    progress = ctx.progress(job_id, PHASE)
    outcomes: list[ClipOutcome] = []
    dropped: list[ClipRejectedError] = []
    for i, clip_id in enumerate(clip_ids):
        progress.step(i, len(clip_ids), f"clip {i + 1}/{len(clip_ids)}")
        try:
            outcomes.append(render_clip(ctx, clip_id))
        except ClipRejectedError as exc:
            dropped.append(exc)
    progress.step(len(clip_ids), len(clip_ids), "done")
    if not outcomes:
        raise ClipRenderError(f"no clip could be rendered ({len(dropped)} failed; first: {dropped[0]})")
    rendered = [o for o in outcomes if o.rendered]
    return PhaseResult(
        PHASE,
        details={
            "clips": len(outcomes) + len(dropped),
            "rendered": len(rendered),
            "reused": len(outcomes) - len(rendered),
            "failed": [d.clip_id for d in dropped],
            "renderers": sorted({o.renderer for o in outcomes}),
            "render_seconds": round(sum(o.seconds for o in rendered), 3),
            "min_validation_score": round(min(o.validation_score for o in outcomes), 4),
        },
        warnings=[dropped_clip_warning(d) for d in dropped],
    )


def dropped_clip_warning(exc: ClipRejectedError) -> str:
    """The job warning for a clip left out of the video because no renderer could produce it."""
    return f"clip {exc.clip_id} ({exc.photo}) left out of the video: no renderer could produce it ({exc.reason})"
