"""A fake EC2 instance metadata service (IMDSv2) for Spot-interruption tests and manual fleet drills.

It behaves like the real one where the worker depends on it: ``PUT /latest/api/token`` needs the TTL
header (400 without, as AWS answers), ``GET /latest/meta-data/spot/instance-action`` needs a live token
(401 without) and answers 404 until an interruption is scheduled, then 200 with AWS's JSON.

    with FakeImds() as imds:
        imds.schedule("terminate", at=datetime.now(UTC) + timedelta(minutes=2))
        fetch_spot_notice(imds.url)

Standalone, for drills against a running worker (point SPOT_TERMINATION_ENDPOINT at it)::

    python -m tests.fakes.imds --port 1338 --terminate-after 30
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any

TOKEN_PATH = "/latest/api/token"
INSTANCE_ACTION_PATH = "/latest/meta-data/spot/instance-action"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
#: AWS gives two minutes' warning; a schedule without a time uses the same.
DEFAULT_WARNING = timedelta(minutes=2)


class FakeImds:
    """A threaded HTTP server on 127.0.0.1 (port 0 = any free port). Thread-safe; use as a context manager.

    ``counts`` records requests by outcome: ``token``, ``token_rejected``, ``action_404``, ``action_200``,
    ``unauthorized``, ``not_found``, ``forbidden``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._body: bytes | None = None
        self.disabled = False  # True mimics an instance with IMDS turned off: 403 everywhere
        self.counts: Counter[str] = Counter()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def schedule(self, action: str = "terminate", at: datetime | None = None) -> None:
        """From now on instance-action answers 200 with this action and time (default: two minutes on)."""
        when = at if at is not None else datetime.now(UTC) + DEFAULT_WARNING
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.schedule_body(json.dumps({"action": action, "time": stamp}))

    def schedule_body(self, body: str | bytes) -> None:
        """Answer instance-action with this raw body (to exercise parsing of odd or broken notices)."""
        with self._lock:
            self._body = body.encode() if isinstance(body, str) else body

    def clear(self) -> None:
        """Back to 404: no interruption scheduled."""
        with self._lock:
            self._body = None

    def expire_tokens(self) -> None:
        """Forget every issued token, as if they lapsed: the next GET with an old token gets 401."""
        with self._lock:
            self._tokens.clear()

    def count(self, key: str) -> int:
        with self._lock:
            return self.counts[key]

    def start(self) -> FakeImds:
        # A short poll interval keeps stop() (and so every test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-imds", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeImds:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- request handling --------------------------------------------------------------------

    def _issue_token(self, ttl_header: str | None) -> tuple[int, bytes]:
        with self._lock:
            if self.disabled:
                self.counts["forbidden"] += 1
                return 403, b""
            try:
                ttl = int(ttl_header) if ttl_header is not None else 0
            except ValueError:
                ttl = 0
            if not 1 <= ttl <= 21600:
                self.counts["token_rejected"] += 1
                return 400, b""
            token = secrets.token_urlsafe(32)
            self._tokens[token] = time.monotonic() + ttl
            self.counts["token"] += 1
            return 200, token.encode()

    def _instance_action(self, token: str | None) -> tuple[int, bytes]:
        with self._lock:
            if self.disabled:
                self.counts["forbidden"] += 1
                return 403, b""
            expiry = self._tokens.get(token or "")
            if expiry is None or expiry <= time.monotonic():
                self.counts["unauthorized"] += 1
                return 401, b""
            if self._body is None:
                self.counts["action_404"] += 1
                return 404, b"Not Found"
            self.counts["action_200"] += 1
            return 200, self._body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        imds = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "EC2ws"

            def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:
                if self.path != TOKEN_PATH:
                    with imds._lock:
                        imds.counts["not_found"] += 1
                    self._reply(404, b"")
                    return
                self._reply(*imds._issue_token(self.headers.get(TTL_HEADER)))

            def do_GET(self) -> None:
                if self.path != INSTANCE_ACTION_PATH:
                    with imds._lock:
                        imds.counts["not_found"] += 1
                    self._reply(404, b"")
                    return
                status, body = imds._instance_action(self.headers.get(TOKEN_HEADER))
                self._reply(status, body, "application/json" if status == 200 else "text/plain")

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and drills log elsewhere
                return None

        return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake EC2 instance metadata service (IMDSv2) for Spot drills.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument(
        "--terminate-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="schedule an interruption this many seconds after start (default: never)",
    )
    parser.add_argument("--action", default="terminate", choices=["terminate", "stop", "hibernate"])
    parser.add_argument(
        "--warning",
        type=float,
        default=DEFAULT_WARNING.total_seconds(),
        metavar="SECONDS",
        help="the notice's time is this far after it appears (AWS: 120)",
    )
    args = parser.parse_args(argv)

    done = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with FakeImds(args.host, args.port) as imds:
        print(f"fake IMDS listening on {imds.url}", flush=True)
        if args.terminate_after is not None:

            def _fire() -> None:
                imds.schedule(args.action, datetime.now(UTC) + timedelta(seconds=args.warning))
                print(f"scheduled Spot {args.action} (in {args.warning:.0f} s)", flush=True)

            timer = threading.Timer(args.terminate_after, _fire)
            timer.daemon = True
            timer.start()
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
