"""The transactional outbox.

A state change that calls for a queue message (fan out phase 2, hand phase 3 to the CPU fleet, re-run
after an edit) stages the message in the `outbox` table *in the same transaction*. After commit, the
`OutboxRelay` sends it and stamps `sent_at`. So:

* a worker killed between its commit and its send loses nothing: any other worker's relay (or the
  API's) sends the row later;
* `dedup_key` is unique, so staging the same logical message twice is a no-op. Two GPU workers that
  finish a job's last two clips at the same moment both try to stage "run phase 3", and one row wins.

Delivery is still at least once (a crash after the send and before the stamp resends the row); every
consumer is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Literal

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import OutboxMessage, utcnow
from app.db.session import session_scope
from app.queue.messages import JobMessage

log = logging.getLogger(__name__)

QueueName = Literal["cpu", "gpu"]
Publisher = Callable[[JobMessage], None]


def stage(session: Session, *, queue: QueueName, message: JobMessage, dedup_key: str) -> bool:
    """Stage `message` for `queue` unless a message with `dedup_key` was ever staged. Returns whether
    this call staged it. Runs inside the caller's transaction."""
    values = {
        "queue": queue,
        "body": message.model_dump(exclude_none=True),
        "dedup_key": dedup_key,
        "job_id": message.job_id,
        "created_at": utcnow(),
        "attempts": 0,
    }
    # INSERT ... ON CONFLICT DO NOTHING: the unique dedup_key decides, without a race between check and insert.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=["dedup_key"])
    result = session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))


class OutboxRelay:
    """Sends staged messages. Safe to run from many processes at once (rows are claimed with
    FOR UPDATE SKIP LOCKED on Postgres)."""

    def __init__(self, sessions: sessionmaker[Session], publishers: Mapping[str, Publisher]) -> None:
        self.sessions = sessions
        self.publishers = dict(publishers)

    def flush(self, *, limit: int = 100) -> int:
        """Send up to `limit` unsent messages. Returns how many were sent. A failed send stays
        staged (with its error) for the next flush."""
        sent = 0
        with session_scope(self.sessions) as s:
            stmt = select(OutboxMessage).where(OutboxMessage.sent_at.is_(None)).order_by(OutboxMessage.id).limit(limit)
            if s.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            for row in s.scalars(stmt):
                publish = self.publishers.get(row.queue)
                if publish is None:
                    continue  # another process (a worker with that queue configured) will send it
                row.attempts = (row.attempts or 0) + 1
                try:
                    publish(JobMessage.model_validate(row.body))
                except Exception as exc:  # transport errors: keep the row, try again on the next flush
                    row.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    log.warning("outbox %s: send to %s failed: %s", row.id, row.queue, row.last_error)
                    continue
                row.sent_at = utcnow()
                row.last_error = None
                sent += 1
        return sent
