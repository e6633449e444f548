"""Leases on jobs and clips: who is working on a row, and until when.

Leases are rows, not locks: `lease_owner` + `lease_expires_at`. Whoever runs a job holds its lease and
renews it while it works: a CPU worker (fleet mode), a GPU worker on a clip, or, in the embedded default,
the process running the job in-process (`held_job_lease`, owner ``inline-<host>-<pid>-<nonce>``). A holder
that dies stops renewing; once the lease has expired anyone may take the job over. An in-process holder
on this host whose process is gone is dead at once, without waiting for expiry, so restarting a killed
API resumes its jobs immediately.

What a live lease means to others is decided here too (`job_busy_reason`): re-runs and edits wait for
it. A job marked running without a live lease is busy only in fleet mode, where phase 2 runs on GPU
workers after the CPU worker released the job lease (each clip has its own). In embedded mode such a
job was left by a process that died, and may be resumed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.models import Clip, Job, JobStatus, utcnow
from app.db.session import session_scope
from app.errors import JobBusyError, JobNotFoundError
from app.heartbeat import Heartbeat
from app.phases.base import PHASE_NAMES, PhaseContext

log = logging.getLogger(__name__)

INLINE_PREFIX = "inline"


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def inline_owner() -> str:
    """Lease owner id of an in-process run: this host, this process, one run."""
    return f"{INLINE_PREFIX}-{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def owner_is_dead(owner: str | None) -> bool:
    """True when `owner` is an in-process run on this host whose process no longer exists."""
    if not owner or not owner.startswith(f"{INLINE_PREFIX}-"):
        return False
    try:
        host_part, pid_text, _nonce = owner[len(INLINE_PREFIX) + 1 :].rsplit("-", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host_part != socket.gethostname()[:40] or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by another user
        return False
    return False


def lease_seconds_left(owner: str | None, expires_at: datetime | None, now: datetime | None = None) -> float:
    """Seconds until a lease expires (0 when there is no live lease)."""
    expires = aware(expires_at)
    if not owner or expires is None or owner_is_dead(owner):
        return 0.0
    return max(0.0, (expires - (now or utcnow())).total_seconds())


def job_busy_reason(job: Job, now: datetime | None = None, *, fleet: bool = True) -> str | None:
    """Why the job cannot take a re-run or an edit right now, or None (see the module docstring)."""
    left = lease_seconds_left(job.lease_owner, job.lease_expires_at, now)
    if left > 0:
        return f"job {job.id} is being worked on by {job.lease_owner} (lease expires in {left:.0f} s)"
    if fleet and job.status == JobStatus.RUNNING:
        return f"job {job.id} is running (phase {job.current_phase}: {PHASE_NAMES.get(job.current_phase, '?')})"
    return None


@dataclass(frozen=True)
class LeaseResult:
    acquired: bool
    holder: str | None = None
    #: When not acquired: seconds until the holder's lease expires.
    seconds_left: float = 0.0


def _locked_job(s: Session, job_id: int) -> Job:
    stmt = select(Job).where(Job.id == job_id)
    if s.bind is not None and s.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    job = s.scalars(stmt).first()
    if job is None:
        raise JobNotFoundError(job_id)
    return job


def acquire_job_lease(ctx: PhaseContext, job_id: int, owner: str, ttl: float) -> LeaseResult:
    with session_scope(ctx.sessions) as s:
        job = _locked_job(s, job_id)
        now = utcnow()
        left = lease_seconds_left(job.lease_owner, job.lease_expires_at, now)
        if left > 0 and job.lease_owner != owner:
            return LeaseResult(False, job.lease_owner, left)
        if job.lease_owner and job.lease_owner != owner:
            log.warning("job %s: taking over the lapsed lease of %s", job_id, job.lease_owner)
        job.lease_owner = owner
        job.lease_expires_at = now + timedelta(seconds=ttl)
        return LeaseResult(True, owner)


def renew_lease(ctx: PhaseContext, model: type[Job] | type[Clip], row_id: int, owner: str, ttl: float) -> bool:
    """Extend our lease on a job or clip row. False when it is no longer ours (it expired and someone
    took over)."""
    with session_scope(ctx.sessions) as s:
        result = s.execute(
            update(model)
            .where(model.id == row_id, model.lease_owner == owner)
            .values(lease_expires_at=utcnow() + timedelta(seconds=ttl))
        )
        return bool(getattr(result, "rowcount", 0))


def renew_job_lease(ctx: PhaseContext, job_id: int, owner: str, ttl: float) -> bool:
    return renew_lease(ctx, Job, job_id, owner, ttl)


def release_job_lease(ctx: PhaseContext, job_id: int, owner: str) -> None:
    with session_scope(ctx.sessions) as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )


@contextlib.contextmanager
def held_job_lease(ctx: PhaseContext, job_id: int) -> Iterator[str]:
    """Hold the job's lease for an in-process run, renewed in the background; released on exit.

    Raises `JobBusyError` while someone else holds a live lease. The owner id is always an in-process
    one (``inline-<host>-<pid>-…``), so a restart on this host recognises a run whose process died.
    """
    owner = inline_owner()
    settings = ctx.settings
    ttl = float(settings.JOB_LEASE_SECONDS)
    lease = acquire_job_lease(ctx, job_id, owner, ttl)
    if not lease.acquired:
        raise JobBusyError(
            f"job {job_id} is being worked on by {lease.holder} (lease expires in {lease.seconds_left:.0f} s)"
        )

    def renew() -> None:
        if not renew_job_lease(ctx, job_id, owner, ttl):
            log.warning("job %s: lost its lease to another run", job_id)

    beat = Heartbeat(min(float(settings.WORKER_HEARTBEAT_SECONDS), ttl / 3), renew)
    beat.start()
    try:
        yield owner
    finally:
        beat.stop()
        release_job_lease(ctx, job_id, owner)
