"""What a worker does with one message. A handler never deletes or re-queues anything itself: it returns a
`Disposition` and the loop applies it, so the retry rules live in one place (`loop.Worker.settle`).

CPU queue (phases 1, 3, 4):  take the job lease, apply `start_phase` once per message, run phases in
order; at phase 2 fan out one GPU message per pending clip and let go of the job.
GPU queue (phase 2):         claim the clip, render it, checkpoint it; whoever finishes the last clip
hands the job back to the CPU queue (exactly once: see `orchestrator.fleet`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import select

from app.db.models import Job, PhaseStatus
from app.db.session import session_scope
from app.errors import JobNotFoundError, PhaseOrderError, PicaividError, RenderCancelled, is_permanent
from app.orchestrator import core, fleet
from app.orchestrator.core import error_message
from app.phases.base import PHASE_NAMES, PhaseContext
from app.progress import ProgressEvent, safe_emit
from app.queue.messages import JobMessage, MalformedMessageError, parse_message
from app.queue.outbox import OutboxRelay
from app.queue.sqs import ReceivedMessage

log = logging.getLogger(__name__)


class Action(StrEnum):
    ACK = "ack"  # done (or nothing to do): delete the message
    REJECT = "reject"  # can never succeed (malformed, unknown job/action): log, delete, count
    RETRY = "retry"  # transient failure: visible again after a backoff; DLQ after max receives
    DEFER = "defer"  # someone else holds the job/clip: re-send with a delay, delete this copy
    RELEASE = "release"  # shutting down: visible again at once (or at the Spot interruption time)


@dataclass(frozen=True)
class Disposition:
    action: Action
    reason: str = ""
    #: Seconds until the message should be seen again (RETRY uses the backoff instead).
    delay: float = 0.0
    job_id: int | None = None


@dataclass
class InFlight:
    """What the worker holds right now; the heartbeat renews it and a forced shutdown releases it."""

    message: ReceivedMessage
    job_id: int | None = None
    clip_id: int | None = None
    holds_job_lease: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class HandlerContext:
    ctx: PhaseContext
    owner: str
    relay: OutboxRelay
    #: Set on SIGTERM / Spot notice: stop between phases, cancel renders at the next frame.
    cancel: threading.Event
    #: Seconds until the announced Spot interruption, read when the work is handed back (0: at once).
    release_delay: Callable[[], float] = lambda: 0.0


def _parse(message: ReceivedMessage) -> JobMessage | Disposition:
    try:
        return parse_message(message.body)
    except MalformedMessageError as exc:
        return Disposition(Action.REJECT, f"malformed message: {exc}")


def _job_exists(hctx: HandlerContext, job_id: int) -> bool:
    with session_scope(hctx.ctx.sessions) as s:
        return s.scalar(select(Job.id).where(Job.id == job_id)) is not None


def _flush(hctx: HandlerContext) -> None:
    try:
        hctx.relay.flush()
    except Exception:  # staged rows stay; the next flush anywhere sends them
        log.warning("outbox flush failed", exc_info=True)


def handle_cpu(hctx: HandlerContext, inflight: InFlight) -> Disposition:
    parsed = _parse(inflight.message)
    if isinstance(parsed, Disposition):
        return parsed
    msg = parsed
    if msg.clip_id is not None:
        return Disposition(Action.REJECT, "clip messages belong on the GPU queue", job_id=msg.job_id)
    ctx, job_id = hctx.ctx, msg.job_id
    try:
        lease = fleet.acquire_job_lease(ctx, job_id, hctx.owner, ctx.settings.JOB_LEASE_SECONDS)
    except JobNotFoundError as exc:
        return Disposition(Action.REJECT, str(exc), job_id=job_id)
    inflight.job_id = job_id
    if not lease.acquired:
        return Disposition(
            Action.DEFER, f"job {job_id} is leased by {lease.holder}", delay=lease.seconds_left + 1.0, job_id=job_id
        )
    with inflight.lock:
        inflight.holds_job_lease = True
    try:
        if msg.start_phase is not None:
            try:
                applied = fleet.apply_start_phase_once(ctx, job_id, msg.start_phase, inflight.message.message_id)
            except PhaseOrderError as exc:
                return Disposition(Action.REJECT, str(exc), job_id=job_id)
            log.info(
                "job %s: %s from phase %s",
                job_id,
                "re-run" if applied else "redelivered re-run, resuming",
                msg.start_phase,
            )
        return _run_cpu_phases(hctx, inflight, msg)
    finally:
        with inflight.lock:
            if inflight.holds_job_lease:
                fleet.release_job_lease(ctx, job_id, hctx.owner)
                inflight.holds_job_lease = False


def _run_cpu_phases(hctx: HandlerContext, inflight: InFlight, msg: JobMessage) -> Disposition:
    ctx, job_id = hctx.ctx, msg.job_id
    while True:
        if hctx.cancel.is_set():
            return Disposition(
                Action.RELEASE, "shutting down between phases", delay=hctx.release_delay(), job_id=job_id
            )
        phase, status = fleet.next_phase(ctx, job_id)
        if phase is None:
            final = fleet.complete_job_if_done(ctx, job_id)
            if final == "completed":
                _emit(hctx, ProgressEvent(job_id, "job_completed"))
            return Disposition(Action.ACK, f"job {job_id} {final}", job_id=job_id)
        if status == PhaseStatus.FAILED:
            return Disposition(
                Action.ACK, f"job {job_id} failed earlier (phase {phase}); re-run it to retry", job_id=job_id
            )
        if phase == fleet.RENDER_PHASE:
            fan = fleet.begin_render_fanout(ctx, job_id, hctx.owner, nonce=inflight.message.message_id)
            if fan.completed:
                continue
            _emit(
                hctx,
                ProgressEvent(
                    job_id,
                    "phase_started",
                    fleet.RENDER_PHASE,
                    message=PHASE_NAMES[2],
                    data={"clips_queued": len(fan.staged), "clips_in_flight": fan.in_flight},
                ),
            )
            with inflight.lock:
                inflight.holds_job_lease = False  # released in the fan-out's transaction
            _flush(hctx)
            return Disposition(
                Action.ACK,
                f"phase 2 fanned out: {len(fan.staged)} clip message(s), {fan.in_flight} in flight",
                job_id=job_id,
            )
        try:
            core.run_phase(ctx, job_id, phase, retry_transient=True)
        except PicaividError as exc:
            if exc.permanent:
                _emit(hctx, ProgressEvent(job_id, "job_failed", phase, message=str(exc)))
                return Disposition(Action.ACK, f"job {job_id} failed: {exc}", job_id=job_id)
            return Disposition(Action.RETRY, f"phase {phase}: {exc}", job_id=job_id)
        except Exception as exc:
            return Disposition(Action.RETRY, f"phase {phase}: {error_message(exc)}", job_id=job_id)


def handle_gpu(hctx: HandlerContext, inflight: InFlight) -> Disposition:
    parsed = _parse(inflight.message)
    if isinstance(parsed, Disposition):
        return parsed
    msg = parsed
    if msg.clip_id is None:
        return Disposition(Action.REJECT, "a GPU message needs clip_id", job_id=msg.job_id)
    if not _job_exists(hctx, msg.job_id):
        return Disposition(Action.REJECT, f"job {msg.job_id} does not exist", job_id=msg.job_id)
    ctx, job_id, clip_id = hctx.ctx, msg.job_id, msg.clip_id
    inflight.job_id = job_id
    claim = fleet.claim_clip(ctx, msg, hctx.owner, ctx.settings.CLIP_LEASE_SECONDS)
    if claim.status == fleet.ClaimStatus.STALE:
        return Disposition(Action.ACK, f"stale clip message: {claim.reason}", job_id=job_id)
    if claim.status == fleet.ClaimStatus.BUSY:
        return Disposition(Action.DEFER, claim.reason, delay=claim.seconds_left + 1.0, job_id=job_id)
    if claim.status == fleet.ClaimStatus.DONE:
        _finish_clip(hctx, job_id)
        return Disposition(Action.ACK, f"clip {clip_id} already rendered", job_id=job_id)
    with inflight.lock:
        inflight.clip_id = clip_id
    from app.phases.render.phase import ClipRejectedError, render_clip  # heavy imports only where clips render

    try:
        outcome = render_clip(ctx, clip_id, cancel=hctx.cancel)
    except RenderCancelled:
        _release_clip(hctx, inflight)
        return Disposition(
            Action.RELEASE, f"clip {clip_id} handed back: shutting down", delay=hctx.release_delay(), job_id=job_id
        )
    except Exception as exc:
        if isinstance(exc, ClipRejectedError):  # every renderer failed: the clip drops out, the job goes on
            _release_clip(hctx, inflight)
            _finish_clip(hctx, job_id)
            return Disposition(Action.ACK, f"clip {clip_id} left out: {exc}", job_id=job_id)
        if is_permanent(exc):
            fleet.fail_render_phase(ctx, job_id, str(exc))
            _emit(hctx, ProgressEvent(job_id, "phase_failed", fleet.RENDER_PHASE, message=str(exc)))
            _emit(hctx, ProgressEvent(job_id, "job_failed", fleet.RENDER_PHASE, message=str(exc)))
            _release_clip(hctx, inflight)
            return Disposition(Action.ACK, f"job {job_id} failed: {exc}", job_id=job_id)
        if not isinstance(exc, PicaividError):
            log.exception("clip %s of job %s crashed", clip_id, job_id)
        _release_clip(hctx, inflight)
        return Disposition(Action.RETRY, f"clip {clip_id}: {error_message(exc)}", job_id=job_id)
    with inflight.lock:
        inflight.clip_id = None
    _finish_clip(hctx, job_id)
    verb = "rendered" if outcome.rendered else "reused"
    return Disposition(
        Action.ACK, f"clip {clip_id} {verb} by {outcome.renderer} in {outcome.seconds:.1f} s", job_id=job_id
    )


def _release_clip(hctx: HandlerContext, inflight: InFlight) -> None:
    with inflight.lock:
        clip_id, inflight.clip_id = inflight.clip_id, None
    if clip_id is not None:
        fleet.release_clip_lease(hctx.ctx, clip_id, hctx.owner)


def _finish_clip(hctx: HandlerContext, job_id: int) -> None:
    done, total = fleet.render_progress(hctx.ctx, job_id)
    _emit(hctx, ProgressEvent(job_id, "progress", fleet.RENDER_PHASE, done, total, f"clip {done}/{total}"))
    if fleet.complete_render_phase_if_done(hctx.ctx, job_id):
        log.info("job %s: every clip rendered; phase 3 handed to the CPU fleet", job_id)
        _emit(hctx, ProgressEvent(job_id, "phase_completed", fleet.RENDER_PHASE, total, total))
    _flush(hctx)


def _emit(hctx: HandlerContext, event: ProgressEvent) -> None:
    """Fleet-level events the orchestrator's in-process path would have emitted (phase 2 is spread over
    many GPU workers, so its start, progress and end are reported here)."""
    safe_emit(hctx.ctx.progress_sink, event)


def give_up(hctx: HandlerContext, job_id: int, reason: str, deliveries: int) -> None:
    """Retries are exhausted (this was the last delivery before the DLQ): fail the job with its last
    error, so it shows failed even before anyone drains the DLQ."""
    message = f"{reason} (gave up after {deliveries} deliveries)"
    with contextlib.suppress(JobNotFoundError):
        fleet.fail_job(hctx.ctx, job_id, message)
        _emit(hctx, ProgressEvent(job_id, "job_failed", message=message))
