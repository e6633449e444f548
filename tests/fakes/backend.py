"""A recording stand-in for the Rails backend's callback endpoint (tests of callbacks and of the fleet)."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)  # type: ignore[no-any-return]


@dataclass
class Backend:
    """Answers POSTs from ``script`` (status, headers) in order, then 200; records every request."""

    url: str = ""
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    requests: list[Received] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)  # cleared: requests wait for it
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, *statuses: int | tuple[int, dict[str, str]]) -> None:
        for s in statuses:
            self.script.append(s if isinstance(s, tuple) else (s, {}))

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.body for r in self.requests]


@contextmanager
def serve_backend() -> Iterator[Backend]:
    state = Backend()
    state.gate.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests.append(Received(self.path, dict(self.headers.items()), raw))
                status, headers = state.script.popleft() if state.script else (200, {})
            state.arrived.set()
            state.gate.wait(5)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    state.gate.set()
    server.shutdown()
    server.server_close()
