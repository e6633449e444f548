"""The worker's heartbeat: while a worker holds a message, keep the message invisible
(ChangeMessageVisibility) and its lease in Postgres alive, well before either runs out. If the worker
dies, both lapse and another worker takes over after at most one visibility timeout / lease period.
The thread itself is `app.heartbeat.Heartbeat`, shared with in-process runs' lease renewal."""

from app.heartbeat import Heartbeat

__all__ = ["Heartbeat"]
