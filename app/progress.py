"""Progress events. The orchestrator and phases emit them; the CLI draws bars, the fleet posts them
to the backend. A sink must never raise into the pipeline: a broken progress display or callback
never fails a job (`safe_emit`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

EventKind = Literal[
    "job_started", "phase_started", "progress", "phase_completed", "phase_failed", "job_completed", "job_failed"
]


@dataclass(frozen=True)
class ProgressEvent:
    job_id: int
    kind: EventKind
    phase: int | None = None
    done: float = 0.0
    total: float = 0.0
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


ProgressSink = Callable[[ProgressEvent], None]


def null_sink(_event: ProgressEvent) -> None:
    return None


def safe_emit(sink: ProgressSink, event: ProgressEvent) -> None:
    try:
        sink(event)
    except Exception:  # a display or callback failure must not fail the job
        log.warning("progress sink failed for %s", event.kind, exc_info=True)


@dataclass
class PhaseProgress:
    """Bound to one job and phase, so phase code reports `step(done, total, message)` and no more."""

    sink: ProgressSink
    job_id: int
    phase: int

    def step(self, done: float, total: float, message: str = "") -> None:
        safe_emit(self.sink, ProgressEvent(self.job_id, "progress", self.phase, done, total, message))
