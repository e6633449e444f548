"""The heartbeat: while a worker holds a message, keep the message invisible (ChangeMessageVisibility)
and its lease in Postgres alive, well before either runs out. If the worker dies, both lapse and
another worker takes over after at most one visibility timeout / lease period."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    def __init__(self, interval: float, beat: Callable[[], None]) -> None:
        super().__init__(name="picaivid-heartbeat", daemon=True)
        self.interval = interval
        self.beat = beat
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.beat()
            except Exception:  # a missed beat is survivable: the next one (or the lease period) covers it
                log.warning("heartbeat failed", exc_info=True)

    def stop(self) -> None:
        self._stop_event.set()
