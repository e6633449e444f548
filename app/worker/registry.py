"""The `workers` table: who is running, what each is doing, and how its messages ended. Each worker
writes only its own row (from its heartbeat and after each message)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import Counter
from dataclasses import dataclass, field

from app.db.models import Worker, utcnow
from app.db.session import session_scope
from app.phases.base import PhaseContext

log = logging.getLogger(__name__)


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
                row.counts = dict(self.counts)
                row.last_seen_at = utcnow()
        except Exception:
            log.warning("could not update the workers table", exc_info=True)

    def count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        self.save()
