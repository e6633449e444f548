"""Asking for a job to run again (the API's `POST /internal/jobs/{id}/run`, the CLI's `run` against the
fleet). Free of FastAPI on purpose: both front ends call `request_run` and send what it staged with
`Dispatcher.flush()` after it returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.db.models import Job, JobStatus
from app.db.session import session_scope
from app.errors import JobBusyError
from app.orchestrator import ensure_phase_rows, get_job, invalidate_from, job_summary
from app.orchestrator.leases import job_busy_reason
from app.phases.base import PhaseContext
from app.services.dispatch import stage_run


def check_not_busy(job: Job, *, fleet: bool, now: datetime | None = None) -> None:
    """Raise `JobBusyError` while someone holds a live lease on the job (or, in fleet mode, it is
    running): a re-run then would invalidate phases under the feet of whoever is doing them. In embedded
    mode a job left running by a process that died has no live lease, so it can be resumed."""
    reason = job_busy_reason(job, now, fleet=fleet)
    if reason is not None:
        raise JobBusyError(f"{reason}; try again when it stops")


def request_run(ctx: PhaseContext, job_id: int, start_phase: int | None, *, reason: str) -> dict[str, Any]:
    """In one transaction: lock the job, refuse while it is busy, invalidate from `start_phase` when
    given (`PhaseOrderError` when an earlier phase has not completed) and stage "run job" in the outbox.
    Without `start_phase` the job resumes at its first unfinished phase. Returns the job summary as
    committed; the caller flushes the dispatcher to send the message."""
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        check_not_busy(job, fleet=ctx.settings.is_fleet)
        ensure_phase_rows(s, job)
        if start_phase is not None:
            invalidate_from(s, job, start_phase)
        stage_run(s, job_id, reason=reason)
        s.flush()
        return job_summary(s, job_id)


def resume_orphaned_runs(ctx: PhaseContext) -> list[int]:
    """Embedded mode, at start-up: stage a resume of every job left running by a process that died (no
    live lease). Fleet mode needs none of this: SQS redelivers a dead worker's message. Returns the ids."""
    resumed: list[int] = []
    with session_scope(ctx.sessions) as s:
        running = s.scalars(select(Job).where(Job.status == JobStatus.RUNNING).order_by(Job.id)).all()
        for job in running:
            if job_busy_reason(job, fleet=False) is None:
                stage_run(s, job.id, reason="resume after the previous run's process stopped")
                resumed.append(job.id)
    return resumed
