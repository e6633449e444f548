"""A daemon thread that calls `beat` every `interval` seconds until stopped: what keeps leases (and a
worker's SQS message visibility) alive while their holder works. A failed beat is logged, not raised."""

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
