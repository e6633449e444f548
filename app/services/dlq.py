"""Dead-letter queues: a message that failed `SQS_MAX_RECEIVES` times (or killed its workers that often)
lands in the queue's DLQ. Draining marks each such job failed with its last recorded error, so nothing
sits there silently, then deletes the message."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from app.db.session import session_scope
from app.errors import JobNotFoundError
from app.orchestrator import fleet, get_job
from app.phases.base import PhaseContext
from app.queue.messages import MalformedMessageError, parse_message
from app.queue.sqs import SqsQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrainedMessage:
    queue: str
    message_id: str
    job_id: int | None
    outcome: str  # "job failed" | "already completed" | "already failed" | "malformed" | "unknown job"
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def drain(ctx: PhaseContext, dlq: SqsQueue, *, queue_label: str, max_messages: int = 1000) -> list[DrainedMessage]:
    drained: list[DrainedMessage] = []
    while len(drained) < max_messages:
        batch = dlq.receive(max_messages=10, wait_seconds=1, visibility_timeout=60)
        if not batch:
            break
        for message in batch:
            drained.append(_drain_one(ctx, queue_label, message.message_id, message.body, message.receive_count))
            dlq.delete(message)
    return drained


def _drain_one(ctx: PhaseContext, label: str, message_id: str, body: str, deliveries: int) -> DrainedMessage:
    try:
        msg = parse_message(body)
    except MalformedMessageError as exc:
        return DrainedMessage(label, message_id, None, "malformed", str(exc))
    try:
        last = fleet.last_error(ctx, msg.job_id)
        what = f"clip {msg.clip_id}" if msg.clip_id else "its message"
        reason = f"{what} went to the dead-letter queue after repeated failures" + (
            f"; last error: {last}" if last else "; no error was recorded (the worker may have crashed or been killed)"
        )
        changed = fleet.fail_job(ctx, msg.job_id, last if last and "gave up after" in last else reason)
    except JobNotFoundError:
        return DrainedMessage(label, message_id, msg.job_id, "unknown job", f"job {msg.job_id} does not exist")
    with session_scope(ctx.sessions) as s:
        job = get_job(s, msg.job_id)
        status, error = job.status, job.error
    if status == "completed":
        return DrainedMessage(label, message_id, msg.job_id, "already completed", "the job completed anyway")
    return DrainedMessage(label, message_id, msg.job_id, "job failed" if changed else "already failed", error or reason)
