"""The job state machine. The only code that changes `jobs.status`, `jobs.current_phase` and
`job_phases`.

    job:   pending ──► running ──► completed
                          │  ▲         │
                          ▼  └─re-run──┤
                        failed ◄───────┘ (re-run from N)

    phase: pending ──► running ──► completed
                          └──────► failed

Rules:
* Phases run in order 1..4. A phase runs only when every earlier phase is completed.
* A completed phase is skipped when the job runs again without `start_phase`: a redelivered message
  resumes where the job stopped instead of redoing work.
* `start_phase=N` invalidates phase N and later (and only those): their rows go back to pending and
  the job's generation is bumped. Clips survive a re-run from 3 or 4; a re-run from 2 re-renders them.
* A `PicaividError` fails the job with its one-line message; any other exception fails it with a
  generic message and is logged with its traceback (never shown to a user).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.models import Clip, ClipStatus, Job, JobPhase, JobStatus, PhaseStatus, utcnow
from app.db.session import session_scope
from app.errors import JobNotFoundError, PhaseOrderError, PicaividError, is_permanent
from app.logs import bind
from app.orchestrator.leases import held_job_lease
from app.phases.base import PHASE_NAMES, PhaseContext, PhaseResult, PhaseRunner
from app.progress import ProgressEvent, safe_emit

log = logging.getLogger(__name__)

ALL_PHASES = (1, 2, 3, 4)


def phase_runner(phase: int) -> PhaseRunner:
    # Imported lazily: phase modules pull in heavy media libraries a status query does not need.
    if phase == 1:
        from app.phases.analyze import run as analyze

        return analyze
    if phase == 2:
        from app.phases.render import run as render

        return render
    if phase == 3:
        from app.phases.timeline import run as timeline

        return timeline
    if phase == 4:
        from app.phases.assemble import run as assemble

        return assemble
    raise PhaseOrderError(f"there is no phase {phase}; phases are 1-4")


@dataclass
class JobOutcome:
    job_id: int
    status: str
    phases_run: list[int] = field(default_factory=list)
    phases_skipped: list[int] = field(default_factory=list)
    error: str | None = None
    #: CLI exit status for a failed job: 2 when the user's input caused it.
    exit_code: int = 0
    timings: dict[int, float] = field(default_factory=dict)


def get_job(session: Session, job_id: int, *, lock: bool = False) -> Job:
    stmt = select(Job).where(Job.id == job_id)
    if lock and session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    job = session.scalars(stmt).first()
    if job is None:
        raise JobNotFoundError(job_id)
    return job


def ensure_phase_rows(session: Session, job: Job) -> dict[int, JobPhase]:
    rows = {p.phase: p for p in session.scalars(select(JobPhase).where(JobPhase.job_id == job.id))}
    for phase in ALL_PHASES:
        if phase not in rows:
            row = JobPhase(job_id=job.id, phase=phase, status=PhaseStatus.PENDING, details={})
            session.add(row)
            rows[phase] = row
    session.flush()
    return rows


def invalidate_from(session: Session, job: Job, start_phase: int, *, reset_clips: bool | None = None) -> None:
    """Send phase `start_phase` and every later phase back to pending. Earlier phases are untouched.

    `reset_clips` (default: only for an explicit re-run from phase 2) sends every clip back to pending
    so that phase 2 renders them all again. Edits pass False: phase 2 then renders exactly the clips
    they sent back to pending (swap_hero) and reuses every other checkpoint."""
    if start_phase not in ALL_PHASES:
        raise PhaseOrderError(f"there is no phase {start_phase}; phases are 1-4")
    rows = ensure_phase_rows(session, job)
    for phase in range(1, start_phase):
        if rows[phase].status != PhaseStatus.COMPLETED:
            raise PhaseOrderError(
                f"cannot run job {job.id} from phase {start_phase}: phase {phase} "
                f"({PHASE_NAMES[phase]}) has not completed"
            )
    for phase in range(start_phase, 5):
        row = rows[phase]
        row.status = PhaseStatus.PENDING
        row.error = None
    if reset_clips is None:
        reset_clips = start_phase == 2
    if reset_clips:
        # An explicit re-render: every clip goes back to pending. (From phase 1, phase 1 itself sends back
        # exactly the clips whose plan changed; unchanged ones keep their render.)
        session.execute(
            update(Clip)
            .where(Clip.job_id == job.id)
            .values(status=ClipStatus.PENDING, lease_owner=None, lease_expires_at=None)
        )
    job.generation = (job.generation or 1) + 1
    job.status = JobStatus.PENDING
    job.error = None
    job.current_phase = start_phase - 1


def _start_phase(ctx: PhaseContext, job_id: int, phase: int) -> bool:
    """Mark `phase` running. Returns False when it is already completed (skip)."""
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        rows = ensure_phase_rows(s, job)
        if rows[phase].status == PhaseStatus.COMPLETED:
            return False
        for earlier in range(1, phase):
            if rows[earlier].status != PhaseStatus.COMPLETED:
                raise PhaseOrderError(f"phase {phase} cannot start: phase {earlier} is {rows[earlier].status}")
        row = rows[phase]
        row.status = PhaseStatus.RUNNING
        row.started_at = utcnow()
        row.finished_at = None
        row.error = None
        row.attempts = (row.attempts or 0) + 1
        row.worker = ctx.worker_id
        job.status = JobStatus.RUNNING
        job.current_phase = phase
        job.error = None
    return True


def _end_phase(
    ctx: PhaseContext,
    job_id: int,
    phase: int,
    status: PhaseStatus,
    seconds: float,
    *,
    error: str | None = None,
    result: PhaseResult | None = None,
) -> None:
    """Record how an attempt at `phase` ended, in one transaction with the job row locked:
    COMPLETED (with the phase's summary and warnings), FAILED (the job fails with the reason), or back to
    PENDING (fleet mode: a transient failure the queue will retry; the job stays running)."""
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        row = ensure_phase_rows(s, job)[phase]
        row.status = status
        row.finished_at = utcnow()
        row.duration_s = round(seconds, 3)
        if status == PhaseStatus.COMPLETED and result is not None:
            row.details = result.details
            if result.warnings:
                job.warnings = [*(job.warnings or []), *({"phase": phase, "message": w} for w in result.warnings)]
        elif status == PhaseStatus.FAILED:
            row.error = error
            job.status = JobStatus.FAILED
            job.error = f"phase {phase} ({PHASE_NAMES[phase]}): {error}"
        elif status == PhaseStatus.PENDING:
            row.error = f"attempt {row.attempts}: {error} (will retry)"
    _log_phase_end(phase, status, seconds, error, result)


def _log_phase_end(
    phase: int, status: PhaseStatus, seconds: float, error: str | None, result: PhaseResult | None
) -> None:
    name = PHASE_NAMES[phase]
    if status == PhaseStatus.COMPLETED:
        log.info("phase %s (%s) completed in %.1f s", phase, name, seconds, extra={"seconds": round(seconds, 3)})
        for warning in result.warnings if result else []:
            log.info("phase %s (%s) warning: %s", phase, name, warning)
    elif status == PhaseStatus.FAILED:
        log.warning("phase %s (%s) failed: %s", phase, name, error)
    else:
        log.warning("phase %s (%s) will be retried: %s", phase, name, error)


def error_message(exc: BaseException) -> str:
    """The one line a user sees: a `PicaividError`'s own message, else a generic one (the traceback
    goes to the worker's log only)."""
    if isinstance(exc, PicaividError):
        return str(exc)
    return f"internal error ({type(exc).__name__}); see worker logs"


def run_phase(ctx: PhaseContext, job_id: int, phase: int, *, retry_transient: bool = False) -> tuple[bool, float]:
    """Run one phase if it is not completed. Returns (ran, seconds). Raises on failure after
    recording it.

    With `retry_transient` (fleet workers) an error that is not permanent (`is_permanent`) leaves the
    phase pending for a retry instead of failing the job."""
    with bind(job_id=job_id, phase=phase):
        if not _start_phase(ctx, job_id, phase):
            return False, 0.0
        return _run_started_phase(ctx, job_id, phase, retry_transient)


def _run_started_phase(ctx: PhaseContext, job_id: int, phase: int, retry_transient: bool) -> tuple[bool, float]:
    safe_emit(ctx.progress_sink, ProgressEvent(job_id, "phase_started", phase, message=PHASE_NAMES[phase]))
    t0 = time.perf_counter()
    try:
        result = phase_runner(phase)(job_id, ctx)
    except BaseException as exc:
        seconds = time.perf_counter() - t0
        message = error_message(exc)
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: leave it to the next delivery
            _end_phase(ctx, job_id, phase, PhaseStatus.PENDING, seconds, error=f"interrupted ({type(exc).__name__})")
            raise
        if not isinstance(exc, PicaividError):
            log.exception("job %s phase %s crashed", job_id, phase)
        if retry_transient and not is_permanent(exc):
            _end_phase(ctx, job_id, phase, PhaseStatus.PENDING, seconds, error=message)
            safe_emit(
                ctx.progress_sink,
                ProgressEvent(job_id, "phase_failed", phase, message=message, data={"retrying": True}),
            )
            raise
        _end_phase(ctx, job_id, phase, PhaseStatus.FAILED, seconds, error=message)
        safe_emit(ctx.progress_sink, ProgressEvent(job_id, "phase_failed", phase, message=message))
        raise
    seconds = time.perf_counter() - t0
    _end_phase(ctx, job_id, phase, PhaseStatus.COMPLETED, seconds, result=result)
    safe_emit(
        ctx.progress_sink,
        ProgressEvent(job_id, "phase_completed", phase, 1, 1, data={"seconds": seconds, **result.details}),
    )
    return True, seconds


def prepare_run(ctx: PhaseContext, job_id: int, start_phase: int | None) -> None:
    """Apply a re-run request (invalidate from `start_phase`) in its own transaction."""
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        ensure_phase_rows(s, job)
        if start_phase is not None:
            invalidate_from(s, job, start_phase)


def run_job(
    ctx: PhaseContext, job_id: int, *, start_phase: int | None = None, phases: Iterable[int] = ALL_PHASES
) -> JobOutcome:
    """Run (or resume) a job in-process through `phases`, holding its lease (so nobody else runs or
    edits it meanwhile, and a run whose process died can be resumed). Errors are recorded on the job
    and returned in the outcome, never raised, except `JobNotFoundError`, `PhaseOrderError` and
    `JobBusyError` (someone else holds a live lease)."""
    with bind(job_id=job_id), held_job_lease(ctx, job_id):
        return _run_job_phases(ctx, job_id, start_phase, phases)


def _run_job_phases(ctx: PhaseContext, job_id: int, start_phase: int | None, phases: Iterable[int]) -> JobOutcome:
    prepare_run(ctx, job_id, start_phase)
    outcome = JobOutcome(job_id=job_id, status=JobStatus.RUNNING)
    safe_emit(ctx.progress_sink, ProgressEvent(job_id, "job_started"))
    for phase in phases:
        try:
            ran, seconds = run_phase(ctx, job_id, phase)
        except PhaseOrderError:
            raise
        except PicaividError as exc:
            outcome.status, outcome.error = JobStatus.FAILED, f"phase {phase} ({PHASE_NAMES[phase]}): {exc}"
            outcome.exit_code = exc.exit_code
            break
        except Exception:
            with session_scope(ctx.sessions) as s:
                outcome.status, outcome.error = JobStatus.FAILED, get_job(s, job_id).error
            outcome.exit_code = 1
            break
        (outcome.phases_run if ran else outcome.phases_skipped).append(phase)
        if ran:
            outcome.timings[phase] = round(seconds, 3)
    else:
        with session_scope(ctx.sessions) as s:
            job = get_job(s, job_id, lock=True)
            rows = ensure_phase_rows(s, job)
            if all(rows[p].status == PhaseStatus.COMPLETED for p in ALL_PHASES):
                job.status = JobStatus.COMPLETED
                job.current_phase = 4
            outcome.status = job.status
    if outcome.status == JobStatus.COMPLETED:
        safe_emit(ctx.progress_sink, ProgressEvent(job_id, "job_completed"))
    elif outcome.status == JobStatus.FAILED:
        safe_emit(ctx.progress_sink, ProgressEvent(job_id, "job_failed", message=outcome.error or ""))
    return outcome


def job_summary(session: Session, job_id: int) -> dict[str, Any]:
    """A JSON-able view of a job's state (CLI `status --json`, API)."""
    job = get_job(session, job_id)
    phases = ensure_phase_rows(session, job)

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "job_id": job.id,
        "listing_id": job.listing_id,
        "status": job.status,
        "current_phase": job.current_phase,
        "error": job.error,
        "generation": job.generation,
        "output_uri": job.output_uri,
        "poster_uri": job.poster_uri,
        "storyboard_uri": job.storyboard_uri,
        "bpm": job.bpm,
        "beat_offset": job.beat_offset,
        "warnings": job.warnings or [],
        "phases": [
            {
                "phase": p,
                "name": PHASE_NAMES[p],
                "status": phases[p].status,
                "attempts": phases[p].attempts,
                "started_at": iso(phases[p].started_at),
                "finished_at": iso(phases[p].finished_at),
                "duration_s": phases[p].duration_s,
                "error": phases[p].error,
            }
            for p in ALL_PHASES
        ],
    }
