"""State transitions of fleet mode: leases, the phase-2 fan-out and the hand-off back to the CPU fleet.

Leases are rows, not locks: `lease_owner` + `lease_expires_at` on a job (held by the CPU worker running
phases 1, 3, 4) or on a clip (held by the GPU worker rendering it). A live worker renews its lease with
every heartbeat; a worker that dies stops renewing, and once the lease has expired another worker may
take over. Short row locks (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED` for clips) only make each
claim/renew/release atomic. So a redelivered duplicate never runs concurrently with the original, and a
`kill -9` costs one lease period, never the job.

    CPU message ─► claim job lease ─► phases 1.. ─► phase 2? ─► fan-out: one GPU message per pending clip,
                                                               staged with "phase 2 running" and the lease
                                                               released, in one transaction
    GPU message ─► claim clip (SKIP LOCKED + lease) ─► render ─► checkpoint ─► last clip? ─► stage
                   "run phase 3" (dedup key per job generation: exactly once) ─► CPU message ─► 3, 4

A fleet with no GPU queue (SQS_GPU_QUEUE_URL empty) renders phase 2 on the CPU worker that reached it,
under its job lease, with the renderers a CPU worker has (parallax, Ken Burns), and carries on with 3, 4.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import AppliedMessage, Clip, ClipStatus, Job, JobPhase, JobStatus, PhaseStatus, utcnow
from app.db.session import session_scope
from app.errors import PicaividError
from app.orchestrator.core import ALL_PHASES, ensure_phase_rows, get_job, invalidate_from, run_phase
from app.orchestrator.leases import (
    LeaseResult,
    acquire_job_lease,
    aware,
    job_busy_reason,
    lease_seconds_left,
    release_job_lease,
    renew_job_lease,
    renew_lease,
)
from app.phases.base import PHASE_NAMES, PhaseContext
from app.progress import ProgressEvent, safe_emit
from app.queue.messages import JobMessage
from app.queue.outbox import stage

log = logging.getLogger(__name__)

# Lease primitives live in `leases` (in-process runs hold job leases too); re-exported for the workers.
__all__ = [
    "LeaseResult",
    "acquire_job_lease",
    "aware",
    "job_busy_reason",
    "lease_seconds_left",
    "release_job_lease",
    "renew_job_lease",
]

RENDER_PHASE = 2


# ---------------------------------------------------------------------------------------------
# re-run requests from the queue
# ---------------------------------------------------------------------------------------------


def apply_start_phase_once(ctx: PhaseContext, job_id: int, start_phase: int, message_id: str) -> bool:
    """Apply a re-run request from the queue exactly once per message: a redelivery of the same SQS
    message resumes the job instead of invalidating its progress again. Returns whether it applied."""
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        if s.get(AppliedMessage, message_id) is not None:
            return False
        invalidate_from(s, job, start_phase)
        s.add(AppliedMessage(message_id=message_id, job_id=job_id, start_phase=start_phase))
        return True


def next_phase(ctx: PhaseContext, job_id: int) -> tuple[int | None, str]:
    """The first phase that is not completed and its status; (None, "") when all are."""
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id)
        rows = ensure_phase_rows(s, job)
        for phase in ALL_PHASES:
            if rows[phase].status != PhaseStatus.COMPLETED:
                return phase, rows[phase].status
    return None, ""


def complete_job_if_done(ctx: PhaseContext, job_id: int) -> str:
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        rows = ensure_phase_rows(s, job)
        if all(rows[p].status == PhaseStatus.COMPLETED for p in ALL_PHASES) and job.status != JobStatus.FAILED:
            job.status = JobStatus.COMPLETED
            job.current_phase = 4
            job.error = None
        return job.status


def fail_job(ctx: PhaseContext, job_id: int, reason: str) -> bool:
    """Mark a job failed with `reason` (retries exhausted, dead-lettered). A completed job stays
    completed. Returns whether the job was changed."""
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        if job.status in (JobStatus.COMPLETED, JobStatus.FAILED) and job.error == reason:
            return False
        if job.status == JobStatus.COMPLETED:
            return False
        rows = ensure_phase_rows(s, job)
        for phase in ALL_PHASES:
            if rows[phase].status in (PhaseStatus.RUNNING, PhaseStatus.PENDING) and phase == job.current_phase:
                rows[phase].status = PhaseStatus.FAILED
                rows[phase].finished_at = utcnow()
        job.status = JobStatus.FAILED
        job.error = reason
        job.lease_owner = job.lease_expires_at = None
        return True


def last_error(ctx: PhaseContext, job_id: int) -> str | None:
    """The most recent error on record for a job: its own, or the latest phase or clip error."""
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id)
        if job.error:
            return job.error
        row = s.scalars(
            select(JobPhase)
            .where(JobPhase.job_id == job_id, JobPhase.error.is_not(None))
            .order_by(JobPhase.finished_at.desc().nulls_last(), JobPhase.phase.desc())
        ).first()
        if row is not None:
            return f"phase {row.phase} ({PHASE_NAMES[row.phase]}): {row.error}"
        clip = s.scalars(
            select(Clip).where(Clip.job_id == job_id, Clip.error.is_not(None)).order_by(Clip.id.desc())
        ).first()
        return f"clip {clip.id}: {clip.error}" if clip is not None else None


# ---------------------------------------------------------------------------------------------
# phase 2 fan-out and completion
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FanOut:
    #: Clips a GPU message was staged for by this call.
    staged: list[int]
    #: Clips still being rendered (messages staged earlier, leases live).
    in_flight: int
    #: True when every clip was already rendered, so phase 2 completed here and the caller carries on.
    completed: bool


def _pending_clips(s: Session, job_id: int) -> list[Clip]:
    return list(
        s.scalars(select(Clip).where(Clip.job_id == job_id, Clip.status != ClipStatus.RENDERED).order_by(Clip.id))
    )


def renders_on_cpu_fleet(settings: Settings) -> bool:
    """A fleet with a CPU queue and no GPU queue (SQS_GPU_QUEUE_URL empty): nobody would consume clip
    messages, so the CPU worker renders phase 2 itself with the renderers it has (parallax, Ken Burns)."""
    return bool(settings.SQS_QUEUE_URL) and not settings.SQS_GPU_QUEUE_URL


def begin_render_fanout(ctx: PhaseContext, job_id: int, owner: str, *, nonce: str) -> FanOut:
    """Start (or resume) phase 2 as GPU work: in one transaction, mark the phase running, stage one GPU
    message per clip that is not rendered and not leased, and release the caller's job lease.

    `nonce` (the triggering SQS message id) keys the staged messages: a redelivery of the same CPU
    message stages nothing new, while a later resume re-sends messages for clips whose earlier
    messages were lost (dead-lettered, or a worker that died after consuming them).

    Without a GPU queue (`renders_on_cpu_fleet`) the phase runs here instead, under the caller's job
    lease, and the result says `completed` (the caller carries on with phase 3, or finds phase 2 failed).
    """
    if renders_on_cpu_fleet(ctx.settings):
        return _render_in_process(ctx, job_id)
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        rows = ensure_phase_rows(s, job)
        for earlier in range(1, RENDER_PHASE):
            if rows[earlier].status != PhaseStatus.COMPLETED:
                raise RuntimeError(f"phase 2 fan-out before phase {earlier} completed")
        row = rows[RENDER_PHASE]
        if row.status == PhaseStatus.COMPLETED:
            return FanOut([], 0, True)
        clips = _pending_clips(s, job_id)
        if not clips:
            total = s.scalar(select(func.count()).select_from(Clip).where(Clip.job_id == job_id)) or 0
            if total == 0:
                raise RuntimeError(f"job {job_id} has no planned clips")
            if row.status != PhaseStatus.RUNNING:  # a fresh run of the phase that found every render reusable
                row.attempts = (row.attempts or 0) + 1
                row.started_at = utcnow()
                row.worker = owner
            _complete_render_phase(s, job, row)
            return FanOut([], 0, True)
        if row.status != PhaseStatus.RUNNING:
            row.status = PhaseStatus.RUNNING
            row.started_at = utcnow()
            row.finished_at = None
            row.error = None
            row.attempts = (row.attempts or 0) + 1
            row.worker = "gpu-fleet"
        job.status = JobStatus.RUNNING
        job.current_phase = RENDER_PHASE
        job.error = None
        now = utcnow()
        staged: list[int] = []
        in_flight = 0
        for clip in clips:
            if lease_seconds_left(clip.lease_owner, clip.lease_expires_at, now) > 0:
                in_flight += 1
                continue
            message = JobMessage(
                job_id=job_id, start_phase=RENDER_PHASE, clip_id=clip.id, generation=job.generation, reason="fan-out"
            )
            if stage(
                s, queue="gpu", message=message, dedup_key=f"render:{job_id}:g{job.generation}:c{clip.id}:{nonce}"
            ):
                staged.append(clip.id)
            else:
                in_flight += 1
        if job.lease_owner == owner:
            job.lease_owner = job.lease_expires_at = None
        return FanOut(staged, in_flight, False)


def _render_in_process(ctx: PhaseContext, job_id: int) -> FanOut:
    """Phase 2 on this (CPU) worker, like the in-process runner. A transient failure raises (the phase is
    back to pending and the message is retried); a permanent one (no clip could be rendered) is recorded
    on the job by the orchestrator and reported here, and the caller then finds phase 2 failed."""
    log.info("job %s: no GPU queue configured; rendering phase 2 on this worker", job_id)
    try:
        run_phase(ctx, job_id, RENDER_PHASE, retry_transient=True)
    except PicaividError as exc:
        if not exc.permanent:
            raise
        safe_emit(ctx.progress_sink, ProgressEvent(job_id, "job_failed", RENDER_PHASE, message=str(exc)))
    return FanOut([], 0, True)


def _complete_render_phase(s: Session, job: Job, row: JobPhase) -> None:
    clips = list(s.scalars(select(Clip).where(Clip.job_id == job.id)))
    started = aware(row.started_at)
    row.status = PhaseStatus.COMPLETED
    row.finished_at = utcnow()
    row.duration_s = round((row.finished_at - started).total_seconds(), 3) if started else 0.0
    row.error = None
    row.details = {
        "clips": len(clips),
        "renderers": sorted({c.model_used for c in clips if c.model_used}),
        "render_seconds": round(sum(c.render_seconds or 0.0 for c in clips), 3),
        "render_attempts": sum(c.render_attempts or 0 for c in clips),
        "min_validation_score": round(min((c.validation_score or 0.0) for c in clips), 4) if clips else None,
        "mode": "fleet",
    }


def render_progress(ctx: PhaseContext, job_id: int) -> tuple[int, int]:
    """(rendered clips, all clips) of a job."""
    with session_scope(ctx.sessions) as s:
        total = s.scalar(select(func.count()).select_from(Clip).where(Clip.job_id == job_id)) or 0
        done = (
            s.scalar(
                select(func.count()).select_from(Clip).where(Clip.job_id == job_id, Clip.status == ClipStatus.RENDERED)
            )
            or 0
        )
    return int(done), int(total)


def complete_render_phase_if_done(ctx: PhaseContext, job_id: int) -> bool:
    """Called by a GPU worker after checkpointing a clip. If every clip of the job is rendered, mark
    phase 2 completed and stage "run phase 3" for the CPU fleet, in one transaction under the job's row
    lock. Two workers finishing the last two clips at the same moment serialise on that lock: the
    first completes the phase, the second sees it completed; the dedup key makes the message unique
    per job generation even if both got through. Returns whether this call completed the phase."""
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        row = ensure_phase_rows(s, job)[RENDER_PHASE]
        if row.status != PhaseStatus.RUNNING or job.status == JobStatus.FAILED:
            return False
        # A clip every renderer failed on (status failed) drops out with a warning; phase 3 skips it.
        left = _pending_clips(s, job_id)
        if any(c.status != ClipStatus.FAILED for c in left):
            return False
        total = s.scalar(select(func.count()).select_from(Clip).where(Clip.job_id == job_id)) or 0
        if left and len(left) == total:
            row.status, row.finished_at = PhaseStatus.FAILED, utcnow()
            row.error = f"no clip could be rendered ({len(left)} failed; first: clip {left[0].id}: {left[0].error})"
            job.status, job.error = JobStatus.FAILED, f"phase 2 ({PHASE_NAMES[2]}): {row.error}"
            return False
        _complete_render_phase(s, job, row)
        job.warnings = [
            *(job.warnings or []),
            *(
                {
                    "phase": RENDER_PHASE,
                    "message": f"clip {c.id} left out of the video: no renderer could produce it ({c.error})",
                }
                for c in left
            ),
        ]
        job.current_phase = RENDER_PHASE
        stage(
            s,
            queue="cpu",
            message=JobMessage(job_id=job_id, generation=job.generation, reason="phase 2 complete"),
            dedup_key=f"after-render:{job_id}:g{job.generation}",
        )
        return True


def fail_render_phase(ctx: PhaseContext, job_id: int, reason: str) -> None:
    """A clip failed permanently (every renderer rejected): phase 2 and the job fail with the reason."""
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        row = ensure_phase_rows(s, job)[RENDER_PHASE]
        row.status = PhaseStatus.FAILED
        row.finished_at = utcnow()
        row.error = reason
        job.status = JobStatus.FAILED
        job.error = f"phase 2 ({PHASE_NAMES[2]}): {reason}"


# ---------------------------------------------------------------------------------------------
# clip leases (GPU workers)
# ---------------------------------------------------------------------------------------------


class ClaimStatus(StrEnum):
    CLAIMED = "claimed"  # the lease is ours: render it
    DONE = "done"  # already rendered: nothing to do (check phase completion)
    BUSY = "busy"  # another worker holds it: try again after `seconds_left`
    STALE = "stale"  # the clip or its run is gone (job re-run, failed, or clip removed): drop


@dataclass(frozen=True)
class ClipClaim:
    status: ClaimStatus
    reason: str = ""
    seconds_left: float = 0.0


def claim_clip(ctx: PhaseContext, message: JobMessage, owner: str, ttl: float) -> ClipClaim:
    assert message.clip_id is not None
    with session_scope(ctx.sessions) as s:
        stmt = select(Clip).where(Clip.id == message.clip_id)
        if s.get_bind().dialect.name == "postgresql":
            # A row another claimer is looking at right now is skipped, not waited for.
            stmt = stmt.with_for_update(skip_locked=True)
        clip = s.scalars(stmt).first()
        if clip is None:
            exists = s.scalar(select(func.count()).select_from(Clip).where(Clip.id == message.clip_id))
            if exists:
                return ClipClaim(ClaimStatus.BUSY, "clip row locked by another claimer", 1.0)
            return ClipClaim(ClaimStatus.STALE, f"clip {message.clip_id} no longer exists")
        if clip.job_id != message.job_id:
            return ClipClaim(ClaimStatus.STALE, f"clip {clip.id} belongs to job {clip.job_id}")
        job = get_job(s, clip.job_id)
        phase_row = ensure_phase_rows(s, job)[RENDER_PHASE]
        if message.generation is not None and job.generation != message.generation:
            return ClipClaim(
                ClaimStatus.STALE,
                f"job {job.id} was re-run (generation {job.generation}, message for {message.generation})",
            )
        if job.status == JobStatus.FAILED or phase_row.status != PhaseStatus.RUNNING:
            return ClipClaim(ClaimStatus.STALE, f"phase 2 of job {job.id} is {phase_row.status}")
        if clip.status == ClipStatus.RENDERED:
            return ClipClaim(ClaimStatus.DONE, "already rendered")
        now = utcnow()
        left = lease_seconds_left(clip.lease_owner, clip.lease_expires_at, now)
        if left > 0 and clip.lease_owner != owner:
            return ClipClaim(ClaimStatus.BUSY, f"{clip.lease_owner} is rendering it", left)
        clip.lease_owner = owner
        clip.lease_expires_at = now + timedelta(seconds=ttl)
        return ClipClaim(ClaimStatus.CLAIMED)


def renew_clip_lease(ctx: PhaseContext, clip_id: int, owner: str, ttl: float) -> bool:
    return renew_lease(ctx, Clip, clip_id, owner, ttl)


def release_clip_lease(ctx: PhaseContext, clip_id: int, owner: str) -> None:
    """Give a clip back (shutdown, transient failure): unfinished work returns to pending."""
    with session_scope(ctx.sessions) as s:
        clip = s.get(Clip, clip_id)
        if clip is None or clip.lease_owner != owner:
            return
        clip.lease_owner = clip.lease_expires_at = None
        if clip.status == ClipStatus.RENDERING:
            clip.status = ClipStatus.PENDING
