"""The job state machine: the only code that changes job, phase and clip state.

* `core` — phases in order, skip completed ones, invalidate on re-run, in-process `run_job`.
* `fleet` — what the queue workers need on top: job and clip leases, phase-2 fan-out, and the
  exactly-once hand-off from the last finished clip to phase 3.
"""

from app.orchestrator.core import (
    ALL_PHASES,
    JobOutcome,
    ensure_phase_rows,
    get_job,
    invalidate_from,
    job_summary,
    phase_runner,
    prepare_run,
    run_job,
    run_phase,
)

__all__ = [
    "ALL_PHASES",
    "JobOutcome",
    "ensure_phase_rows",
    "get_job",
    "invalidate_from",
    "job_summary",
    "phase_runner",
    "prepare_run",
    "run_job",
    "run_phase",
]
