"""Phase 2 entry point. Renders clips one at a time and checkpoints each finished clip (row + artifact)
so that a crash or a re-delivery never renders a finished clip again."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from app.db.models import Clip, ClipStatus, Photo, utcnow
from app.db.session import session_scope
from app.errors import PicaividError
from app.media.images import load_photo
from app.media.types import MotionPlan
from app.media.validate import validate_clip
from app.orchestrator import get_job
from app.phases.base import PhaseContext, PhaseResult
from app.phases.render.renderers import ClipRenderer, RenderRequest, renderer_chain
from app.storage import keys

PHASE = 2


class ClipRenderError(PicaividError):
    """A clip cannot be rendered: it does not exist, or every renderer failed for it."""


class ClipRejectedError(ClipRenderError):
    """Every renderer failed or was rejected by the validator for one clip. The clip is marked failed with
    the reason; phase 2 leaves it out of the video with a warning (the job fails only when no clip is left)."""

    def __init__(self, clip_id: int, photo: str, reason: str) -> None:
        self.clip_id, self.photo, self.reason = clip_id, photo, reason
        super().__init__(f"clip {clip_id} could not be rendered ({reason})")


def render_key(
    photo_uri: str, plan: dict[str, object], duration: float, ctx: PhaseContext, chain: list[ClipRenderer]
) -> str:
    """Everything a rendered clip depends on. Equal keys mean the existing artifact can be reused."""
    width, height = ctx.settings.output_size
    material = json.dumps(
        {
            "photo": photo_uri,
            "plan": plan,
            "duration": round(duration, 4),
            "size": [width, height],
            "fps": ctx.settings.OUTPUT_FPS,
            "crf": ctx.settings.CLIP_CRF,
            "renderers": [f"{r.name}@{r.version}" for r in chain],
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


def render_clip(ctx: PhaseContext, clip_id: int, *, cancel: threading.Event | None = None) -> ClipOutcome:
    """Render one clip unless its checkpoint (row + artifact with the same render key) exists.

    `cancel` (fleet workers): when set, the renderer stops at its next frame and `RenderCancelled`
    propagates; the clip row keeps status "rendering" for the worker to hand back."""
    settings = ctx.settings
    width, height = settings.output_size
    chain = renderer_chain(settings)
    with session_scope(ctx.sessions) as s:
        clip = s.get(Clip, clip_id)
        if clip is None or clip.photo_id is None:
            raise ClipRenderError(f"clip {clip_id} does not exist")
        photo = s.get(Photo, clip.photo_id)
        assert photo is not None
        plan_dict = dict(clip.motion_plan or {})
        duration = float(clip.duration or 4.0)
        key = render_key(photo.s3_uri, plan_dict, duration, ctx, chain)
        artifact = keys.clip(clip.job_id, clip.id, key)
        if (
            clip.status == ClipStatus.RENDERED
            and clip.render_key == key
            and clip.s3_uri
            and ctx.storage.exists(artifact)
        ):
            return ClipOutcome(clip_id, False, clip.model_used or "", 0.0, clip.validation_score or 0.0)
        clip.status = ClipStatus.RENDERING
        clip.render_attempts = (clip.render_attempts or 0) + 1
        job_id, photo_uri = clip.job_id, photo.s3_uri
        photo_name = photo.filename or f"photo {photo.id}"

    workdir = ctx.workdir(job_id)
    source = load_photo(ctx.storage.local_path(ctx.storage.resolve_key(photo_uri), workdir / "cache"))
    plan = MotionPlan.from_dict(plan_dict)
    out = workdir / "clips" / f"{clip_id}-{key[:12]}.mp4"
    log: list[dict[str, object]] = []
    for renderer in chain:
        t0 = time.perf_counter()
        try:
            renderer.render(
                RenderRequest(
                    rgb=source.rgb,
                    plan=plan,
                    out_path=out,
                    width=width,
                    height=height,
                    fps=settings.OUTPUT_FPS,
                    duration=duration,
                    preset=settings.CLIP_X264_PRESET,
                    crf=settings.CLIP_CRF,
                    cancel=cancel,
                )
            )
        except PicaividError as exc:
            log.append({"renderer": renderer.name, "ok": False, "reason": str(exc)})
            continue
        seconds = time.perf_counter() - t0
        check = validate_clip(
            out, source.rgb, plan, width=width, height=height, fps=settings.OUTPUT_FPS, duration=duration
        )
        log.append(
            {
                "renderer": renderer.name,
                "ok": check.passed,
                "score": round(check.score, 4),
                "reasons": check.reasons,
                "seconds": round(seconds, 3),
                "validate_seconds": round(time.perf_counter() - t0 - seconds, 3),
            }
        )
        if not check.passed:
            continue
        uri = ctx.storage.put_file(artifact, out, "video/mp4")
        with session_scope(ctx.sessions) as s:
            clip = s.get(Clip, clip_id)
            assert clip is not None
            clip.status = ClipStatus.RENDERED
            clip.s3_uri = uri
            clip.render_key = key
            clip.model_used = renderer.name
            clip.is_3d = renderer.is_3d
            clip.validation_score = round(check.score, 4)
            clip.render_seconds = round(seconds, 3)
            clip.rendered_at = utcnow()
            clip.render_log = log
            clip.error = None
            clip.lease_owner = clip.lease_expires_at = None
        out.unlink(missing_ok=True)
        return ClipOutcome(clip_id, True, renderer.name, seconds, check.score)
    reason = "; ".join(f"{e['renderer']}: {e.get('reason') or e.get('reasons')}" for e in log)
    with session_scope(ctx.sessions) as s:
        clip = s.get(Clip, clip_id)
        assert clip is not None
        clip.status = ClipStatus.FAILED
        clip.error = reason
        clip.render_log = log
    raise ClipRejectedError(clip_id, photo_name, reason)


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
