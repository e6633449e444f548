"""The `workers` table: who is running, what each is doing, what it can render, and how its messages
ended. Each worker writes only its own row (from its heartbeat and after each message).

What a worker can do is kept in its row's `counts` JSON under `CAPABILITIES_KEY` (next to the numeric
outcome counts; readers that sum outcomes skip it): ``{"renderers": ["parallax", "ken_burns"],
"skipped": {"ltx2": "GPU workers only"}}``, i.e. `Components.report()`'s renderers and skip reasons.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from app.db.models import Worker, utcnow
from app.db.session import session_scope
from app.phases.base import PhaseContext

log = logging.getLogger(__name__)

#: The key of `workers.counts` that holds the worker's capabilities (never an outcome name).
CAPABILITIES_KEY = "capabilities"


def new_worker_id(worker_type: str) -> str:
    return f"{worker_type}-{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class WorkerRecord:
    ctx: PhaseContext
    worker_id: str
    worker_type: str
    state: str = "idle"
    job_id: int | None = None
    clip_id: int | None = None
    counts: Counter[str] = field(default_factory=Counter)

    def save(self) -> None:
        """Upsert this worker's row. Never raises: bookkeeping must not stop a worker."""
        try:
            with session_scope(self.ctx.sessions) as s:
                row = s.get(Worker, self.worker_id)
                if row is None:
                    row = Worker(
                        id=self.worker_id,
                        worker_type=self.worker_type,
                        hostname=socket.gethostname(),
                        pid=os.getpid(),
                        started_at=utcnow(),
                    )
                    s.add(row)
                row.state = self.state
                row.job_id = self.job_id
                row.clip_id = self.clip_id
                row.counts = self.row_counts()
                row.last_seen_at = utcnow()
        except Exception:
            log.warning("could not update the workers table", exc_info=True)

    def count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        self.save()

    def capabilities(self) -> dict[str, Any] | None:
        """The renderers this process built and why any configured component was left out; None until
        the process has built its components (entry points build them at start-up)."""
        components = self.ctx.components
        if components is None:
            return None
        report = components.report()
        return {"renderers": list(report.get("renderers") or []), "skipped": dict(report.get("skipped") or {})}

    def row_counts(self) -> dict[str, Any]:
        """What `workers.counts` holds: the outcome counts, plus the capabilities once they are known."""
        counts: dict[str, Any] = dict(self.counts)
        capabilities = self.capabilities()
        if capabilities is not None:
            counts[CAPABILITIES_KEY] = capabilities
        return counts


def worker_capabilities(counts: object) -> dict[str, Any]:
    """The capabilities a worker recorded in its row's `counts` ({} when it recorded none)."""
    value = counts.get(CAPABILITIES_KEY) if isinstance(counts, dict) else None
    return value if isinstance(value, dict) else {}
