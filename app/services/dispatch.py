"""Asking for a job to run, in fleet mode and in the embedded default alike.

Every request to run a job (the API's create/run/edit, the CLI's `run` against the fleet) is staged in
the transactional outbox inside the caller's transaction (`stage_run`), then sent after commit by a
`Dispatcher`:

* fleet mode (`SQS_QUEUE_URL` set): to the CPU queue, where any CPU worker picks it up;
* embedded mode: to an in-process `InlineRunner` (one background thread running the orchestrator).
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.phases.base import PhaseContext
from app.queue.messages import JobMessage
from app.queue.outbox import OutboxRelay, Publisher, stage
from app.queue.sqs import SqsQueue, sqs_client

log = logging.getLogger(__name__)


def stage_run(
    session: Session, job_id: int, *, start_phase: int | None = None, reason: str, dedup_key: str | None = None
) -> None:
    """Stage "run job `job_id`" on the CPU queue, in `session`'s transaction. Without `start_phase` the
    worker resumes at the job's first unfinished phase, which is what callers that have already
    invalidated phases themselves (edits, API re-runs) want."""
    message = JobMessage(job_id=job_id, start_phase=start_phase, reason=reason[:200])
    stage(session, queue="cpu", message=message, dedup_key=dedup_key or f"run:{job_id}:{uuid.uuid4().hex}")


def fleet_publishers(settings: Settings, client: Any | None = None) -> dict[str, Publisher]:
    """Publishers for the queues this process knows the URLs of."""
    if not settings.SQS_QUEUE_URL and not settings.SQS_GPU_QUEUE_URL:
        return {}
    client = client or sqs_client(settings)
    publishers: dict[str, Publisher] = {}
    for name, url in (("cpu", settings.SQS_QUEUE_URL), ("gpu", settings.SQS_GPU_QUEUE_URL)):
        if url:
            publishers[name] = _sender(SqsQueue(client, url))
    return publishers


def _sender(queue: SqsQueue) -> Publisher:
    def send(message: JobMessage) -> None:
        queue.send(message.body())

    return send


class InlineRunner:
    """Embedded mode's queue: runs requested jobs one at a time on a background thread, through the
    same orchestrator the workers use."""

    def __init__(self, ctx: PhaseContext) -> None:
        self.ctx = ctx
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="picaivid-inline")
        self._lock = threading.Lock()
        self.futures: list[Future[Any]] = []

    def publish(self, message: JobMessage) -> None:
        with self._lock:
            self.futures.append(self._pool.submit(self._run, message))

    def _run(self, message: JobMessage) -> None:
        from app.orchestrator import run_job

        try:
            run_job(self.ctx, message.job_id, start_phase=message.start_phase)
        except Exception:  # recorded on the job by the orchestrator; keep the thread alive
            log.exception("inline run of job %s failed", message.job_id)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every job submitted so far has finished (tests, shutdown)."""
        with self._lock:
            pending = list(self.futures)
        for future in pending:
            future.result(timeout=timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class Dispatcher:
    """Sends what `stage_run` (and the orchestrator's fan-out) staged."""

    def __init__(self, relay: OutboxRelay, mode: str, inline: InlineRunner | None = None) -> None:
        self.relay = relay
        self.mode = mode
        self.inline = inline

    @classmethod
    def for_context(cls, ctx: PhaseContext, *, sqs: Any | None = None) -> Dispatcher:
        settings = ctx.settings
        if settings.SQS_QUEUE_URL:
            return cls(OutboxRelay(ctx.sessions, fleet_publishers(settings, sqs)), "sqs")
        inline = InlineRunner(ctx)
        return cls(OutboxRelay(ctx.sessions, {"cpu": inline.publish}), "inline", inline)

    def flush(self) -> int:
        try:
            return self.relay.flush()
        except Exception:  # staged rows survive; the next flush (or any worker's relay) sends them
            log.warning("outbox flush failed", exc_info=True)
            return 0

    def close(self) -> None:
        if self.inline is not None:
            self.inline.shutdown()
