"""Progress callbacks to the Rails backend: a `ProgressSink` that POSTs each event, off the job's thread.

Rules, and why:

* ``__call__`` only enqueues. Rendering must never wait on the backend, and a callback failure never
  raises into the pipeline nor fails a job: the job's state lives in the database, callbacks are a
  courtesy notification.
* One daemon thread delivers in order. Retries (connection errors, timeouts, 408, 429, 5xx) use
  exponential backoff with jitter and honour Retry-After; other 4xx mean the request itself is wrong,
  so retrying cannot help: one warning, give up.
* Every event gets one idempotency key (a uuid4), sent unchanged on each retry with a byte-identical
  body, so the backend can discard the duplicates a lost response causes.
* ``progress`` events are coalesced: at most one per job+phase per second, and the newest one waiting
  is the one sent when the window opens (the backend never sits on a stale figure). The final one
  (done == total) always goes out at once.
* The queue is bounded. When full, the oldest queued ``progress`` events make room; lifecycle events
  (job/phase started, completed, failed) are never dropped.
* Callbacks never carry the API key (it opens /internal). They are signed instead, Stripe style:
  ``X-Picaivid-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(CALLBACK_SECRET, "<t>." + body)>``, signed
  afresh on every attempt (the body stays byte-identical, the timestamp is current). `verify_signature`
  is the receiver's side. Without CALLBACK_SECRET: nothing is sent in production (one error logged),
  elsewhere events go out unsigned (one warning logged).
* A job's own ``callback_url`` is untrusted: before every attempt its host is resolved again and checked
  (`app.netguard`), and the connection goes to the address that passed (the Host header and TLS SNI keep
  the name), so DNS rebinding after job creation gains nothing. Redirects are never followed. The origin
  of BACKEND_URL is operator-configured and trusted.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from app.config import Settings
from app.netguard import CallbackPolicy, CallbackURLError, HostLookupError, Pinned, Resolver, pin, system_resolve
from app.phases.base import PHASE_NAMES
from app.progress import ProgressEvent

log = logging.getLogger(__name__)

#: Statuses worth retrying: the backend is busy, restarting or briefly broken.
RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)})
#: The header carrying ``t=<unix seconds>,v1=<hex signature>``.
SIGNATURE_HEADER = "X-Picaivid-Signature"
#: How old (or how far in the future) a signature's timestamp may be before a receiver refuses it.
SIGNATURE_TOLERANCE_SECONDS = 300.0


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The X-Picaivid-Signature value for ``body``: HMAC-SHA256 over ``b"<t>." + body``."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """What a receiver checks: ``header`` (X-Picaivid-Signature) signs exactly ``body`` (the raw bytes
    received) with ``secret``, and its timestamp is within ``tolerance`` seconds of ``now``. Any one of
    several ``v1=`` entries may match (secret rotation). Constant-time comparison; never raises."""
    if not secret or not header:
        return False
    timestamp: int | None = None
    candidates: list[bytes] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value.encode("utf-8", "replace"))
    current = time.time() if now is None else now
    if timestamp is None or not candidates or abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).rsplit("v1=", 1)[1].encode("ascii")
    return any(hmac.compare_digest(expected, c) for c in candidates)


@dataclass
class _Item:
    """One event on its way: the body is frozen when accepted, so every retry sends the same bytes."""

    event: ProgressEvent
    body: bytes
    idempotency_key: str


class CallbackSink:
    """POSTs progress events to the job's ``callback_url`` or to ``BACKEND_URL + CALLBACK_PATH``.

    ``url_for_job(job_id)`` returns the job's own callback URL (the worker reads ``jobs.callback_url``);
    it is called on the delivery thread, once per job, and the answer is cached. With neither that nor
    BACKEND_URL the sink is a no-op. Counters ``sent``, ``failed``, ``dropped`` (queue overflow or after
    close), ``throttled`` (progress coalesced away) and ``skipped`` (no URL for the job) feed metrics.
    ``resolve(host, port)`` is the DNS lookup behind the checks of job URLs (tests inject one).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        url_for_job: Callable[[int], str | None] | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_queue: int = 1000,
        throttle_s: float = 1.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        resolve: Resolver = system_resolve,
    ) -> None:
        # Deliberately no API_KEY here: it opens /internal and must never leave this service.
        self.secret = settings.CALLBACK_SECRET
        self.policy = CallbackPolicy.from_settings(settings)
        self._resolve = resolve
        self.default_url = (settings.BACKEND_URL.rstrip("/") + settings.CALLBACK_PATH) if settings.BACKEND_URL else None
        self.timeout = settings.CALLBACK_TIMEOUT_SECONDS
        self.max_attempts = max(1, settings.CALLBACK_MAX_ATTEMPTS)
        self.max_queue = max(1, max_queue)
        self.throttle_s = throttle_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._url_for_job = url_for_job
        self._url_cache: dict[int, str | None] = {}
        self._owns_client = client is None
        self._client = client
        self._pinned_client = client
        # The default sleep is swapped for a wait on the abort event, so close() is never held up by a
        # 30 s backoff; an injected sleep (tests) is used as given.
        self._sleep = self._abortable_sleep if sleep is time.sleep else sleep

        self._cond = threading.Condition()
        self._queue: deque[_Item] = deque()
        #: Throttled progress waiting for its window, newest per (job, phase), with the time it may go.
        self._pending: dict[tuple[int, int | None], tuple[float, _Item]] = {}
        self._next_allowed: dict[tuple[int, int | None], float] = {}
        self._in_flight = False
        self._closing = False
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None

        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.throttled = 0
        self.skipped = 0

        #: Production without CALLBACK_SECRET: unsigned callbacks could be forged by anyone, so none go out.
        self.refused = not self.secret and settings.ENVIRONMENT == "production"
        if self.refused and self.routable:
            log.error("CALLBACK_SECRET is not set: progress callbacks are disabled (ENVIRONMENT=production)")
        elif not self.secret and self.routable:
            log.warning("CALLBACK_SECRET is not set: progress callbacks go out unsigned")

    @property
    def routable(self) -> bool:
        return self.default_url is not None or self._url_for_job is not None

    @property
    def enabled(self) -> bool:
        """False when no event could ever be routed anywhere, or may not be sent (production without
        CALLBACK_SECRET): then calls return without doing anything."""
        return self.routable and not self.refused

    # --- the sink ------------------------------------------------------------------------------

    def __call__(self, event: ProgressEvent) -> None:
        """Accept an event for delivery; returns at once and never raises."""
        if not self.enabled:
            return
        try:
            self._accept(event)
        except Exception:  # e.g. unserialisable data: lose the event, never the job
            log.warning("callback for job %s %s not queued", event.job_id, event.kind, exc_info=True)
            with self._cond:
                self.dropped += 1

    def _accept(self, event: ProgressEvent) -> None:
        item = self._make_item(event)
        now = time.monotonic()
        key = (event.job_id, event.phase)
        with self._cond:
            if self._closing:
                self.dropped += 1
                log.debug("callback sink closed: %s for job %s dropped", event.kind, event.job_id)
                return
            if event.kind == "progress" and not _is_final(event):
                if key in self._pending or now < self._next_allowed.get(key, 0.0):
                    if key in self._pending:
                        self.throttled += 1  # superseded by this newer figure
                    due = max(now, self._next_allowed.get(key, 0.0))
                    self._pending[key] = (due, item)
                    self._ensure_thread()
                    self._cond.notify_all()
                    return
                self._next_allowed[key] = now + self.throttle_s
            elif event.kind == "progress":
                if self._pending.pop(key, None) is not None:
                    self.throttled += 1  # the final figure makes the waiting one pointless
                self._next_allowed[key] = now + self.throttle_s
            else:
                # A lifecycle event: the job's waiting progress goes first, so the backend sees events
                # in the order they happened.
                for pkey in [k for k in self._pending if k[0] == event.job_id]:
                    self._enqueue(self._pending.pop(pkey)[1])
                if event.kind in ("job_completed", "job_failed"):  # the job is over: forget its windows
                    for pkey in [k for k in self._next_allowed if k[0] == event.job_id]:
                        del self._next_allowed[pkey]
            self._enqueue(item)
            self._ensure_thread()
            self._cond.notify_all()

    def _enqueue(self, item: _Item) -> None:
        """Append under the lock, making room by dropping the oldest queued progress event if full."""
        if len(self._queue) >= self.max_queue:
            victim = next((i for i in self._queue if i.event.kind == "progress"), None)
            if victim is not None:
                self._queue.remove(victim)
                self._count_drop(victim.event)
            elif item.event.kind == "progress":
                self._count_drop(item.event)
                return
            # else: only lifecycle events queued and another arrives: it goes in over the bound. They are
            # a handful per job, so this cannot grow without limit.
        self._queue.append(item)

    def _count_drop(self, event: ProgressEvent) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 100 == 0:  # say so, without a line per dropped event
            log.warning(
                "callback queue full (%d): dropped progress for job %s (%d dropped so far)",
                self.max_queue,
                event.job_id,
                self.dropped,
            )

    def _make_item(self, event: ProgressEvent) -> _Item:
        key = str(uuid.uuid4())
        done, total = _finite(event.done), _finite(event.total)
        progress: float | None = None
        if done is not None and total is not None and total > 0:
            progress = min(1.0, max(0.0, done / total))
        payload: dict[str, Any] = {
            "job_id": event.job_id,
            "event": event.kind,
            "phase": event.phase,
            "phase_name": PHASE_NAMES.get(event.phase) if event.phase is not None else None,
            "done": done,
            "total": total,
            "progress": progress,
            "message": event.message,
            "data": event.data,
            # When the worker emitted it; fixed at that moment so a retried body is byte-identical.
            "sent_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "idempotency_key": key,
        }
        # default=str: a Path or Decimal in `data` should not cost the event.
        body = json.dumps(payload, default=str, allow_nan=False, separators=(",", ":")).encode()
        return _Item(event, body, key)

    # --- delivery thread ---------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        # Started lazily (under the lock) so a sink that never sees an event never owns a thread.
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="callback-sink", daemon=True)
            self._thread.start()

    def _next_item(self) -> _Item | None:
        """Block until an item is ready (or return None once closing and drained)."""
        with self._cond:
            while True:
                now = time.monotonic()
                for pkey, (due, item) in list(self._pending.items()):
                    if due <= now or self._closing:
                        del self._pending[pkey]
                        self._next_allowed[pkey] = now + self.throttle_s
                        self._enqueue(item)
                if self._queue:
                    self._in_flight = True
                    return self._queue.popleft()
                if self._closing or self._abort.is_set():
                    return None
                wait = min((due for due, _ in self._pending.values()), default=None)
                self._cond.wait(None if wait is None else max(0.0, wait - now))

    def _run(self) -> None:
        try:
            while True:
                item = self._next_item()
                if item is None:
                    return
                try:
                    self._deliver(item)
                except Exception:  # the delivery thread must outlive any one bad event
                    log.warning("callback for job %s %s failed", item.event.job_id, item.event.kind, exc_info=True)
                    self._bump("failed")
                finally:
                    with self._cond:
                        self._in_flight = False
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._in_flight = False
                self._cond.notify_all()

    def _bump(self, counter: str) -> None:
        with self._cond:
            setattr(self, counter, getattr(self, counter) + 1)

    def _target(self, job_id: int) -> str | None:
        if job_id in self._url_cache:
            return self._url_cache[job_id]
        url: str | None = None
        if self._url_for_job is not None:
            try:
                url = self._url_for_job(job_id) or None
            except Exception:  # a DB hiccup: use the default now, ask again for the next event
                log.warning("callback URL lookup for job %s failed; using BACKEND_URL", job_id, exc_info=True)
                return self.default_url
        url = url or self.default_url
        if len(self._url_cache) >= 10_000:  # a long-lived worker sees many jobs; old ones never come back
            self._url_cache.clear()
        self._url_cache[job_id] = url
        return url

    def _http(self, pinned: bool) -> httpx.Client:
        """BACKEND_URL: a pooled client. Pinned job URLs: no proxy from the environment (the checked
        address is what we connect to) and no keep-alive (a pooled TLS connection to one address must
        not serve another host name's request, whose certificate was never checked on it)."""
        if not pinned:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
            return self._client
        if self._pinned_client is None:
            limits = httpx.Limits(max_keepalive_connections=0)
            self._pinned_client = httpx.Client(
                timeout=self.timeout, follow_redirects=False, trust_env=False, limits=limits
            )
        return self._pinned_client

    def _pin(self, url: str) -> Pinned:
        if url == self.default_url:  # operator-configured: trusted as given
            return Pinned(httpx.URL(url))
        return pin(url, self.policy, self._resolve)

    def _post(self, url: str, item: _Item) -> httpx.Response:
        """One POST: re-check and pin the URL, sign the body now (never the API key), no redirects."""
        target = self._pin(url)
        headers = {
            "Content-Type": "application/json",
            "X-Idempotency-Key": item.idempotency_key,
            **target.headers(),
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, item.body)
        return self._http(target.ip is not None).post(
            target.request_url(),
            content=item.body,
            headers=headers,
            timeout=self.timeout,
            extensions=target.extensions(),
            follow_redirects=False,
        )

    def _attempt(self, url: str, item: _Item) -> tuple[str | None, str, float | None]:
        """One attempt: (``"sent"``/``"failed"`` when over, None to retry; the problem; Retry-After)."""
        event = item.event
        try:
            resp = self._post(url, item)
        except CallbackURLError as exc:  # the URL, or what it resolves to now, is forbidden: permanent
            log.warning("callback %s for job %s refused: %s", event.kind, event.job_id, exc)
            return "failed", str(exc), None
        except (httpx.HTTPError, HostLookupError) as exc:  # connection refused, timeouts, DNS, protocol
            return None, f"{type(exc).__name__}: {exc}", None
        if 200 <= resp.status_code < 300:
            return "sent", "", None
        problem = f"HTTP {resp.status_code}"
        if resp.status_code not in RETRYABLE_STATUSES:
            log.warning(
                "callback %s for job %s to %s rejected with %s: not retried%s",
                event.kind,
                event.job_id,
                url,
                problem,
                " (redirects are not followed)" if resp.is_redirect else "",
            )
            return "failed", problem, None
        return None, problem, _retry_after_seconds(resp.headers.get("Retry-After"))

    def _deliver(self, item: _Item) -> None:
        event = item.event
        url = self._target(event.job_id)
        if url is None:
            self._bump("skipped")
            return
        for attempt in range(1, self.max_attempts + 1):
            if self._abort.is_set():
                log.warning("callback %s for job %s abandoned at shutdown", event.kind, event.job_id)
                self._bump("failed")
                return
            outcome, problem, retry_after = self._attempt(url, item)
            if outcome is not None:
                self._bump(outcome)
                return
            if attempt == self.max_attempts:
                log.warning(
                    "callback %s for job %s to %s failed after %d attempts: %s",
                    event.kind,
                    event.job_id,
                    url,
                    attempt,
                    problem,
                )
                self._bump("failed")
                return
            delay = self._backoff(attempt, retry_after)
            log.debug(
                "callback %s for job %s: %s; retry %d in %.2f s", event.kind, event.job_id, problem, attempt + 1, delay
            )
            self._sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.backoff_cap_s, retry_after)
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        # Jitter in [ceiling/2, ceiling]: workers that failed together do not retry together.
        return ceiling * random.uniform(0.5, 1.0)

    def _abortable_sleep(self, seconds: float) -> None:
        self._abort.wait(seconds)

    # --- lifecycle ---------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything accepted so far, throttled progress included, and wait for it (at most
        ``timeout`` seconds). True when all of it was handled (sent or given up)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            now = time.monotonic()
            for pkey, (_due, item) in list(self._pending.items()):
                del self._pending[pkey]
                self._next_allowed[pkey] = now + self.throttle_s
                self._enqueue(item)
            if self._queue:
                self._ensure_thread()
            self._cond.notify_all()
            while self._queue or self._in_flight or self._pending:
                if self._thread is None or not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.5 if remaining is None else min(remaining, 0.5))
            return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush (within ``timeout``), then stop the thread; events arriving later are dropped. Whatever
        is still retrying when time runs out is abandoned. True when everything was handled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        drained = self.flush(timeout)
        with self._cond:
            self._closing = True
            if not drained:
                self._abort.set()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(None if deadline is None else max(0.1, deadline - time.monotonic()))
        if self._owns_client and (thread is None or not thread.is_alive()):
            for client in {id(c): c for c in (self._client, self._pinned_client) if c is not None}.values():
                client.close()
        return drained

    def stats(self) -> dict[str, int]:
        """Counters plus the current backlog, for metrics and the worker's shutdown log line."""
        with self._cond:
            return {
                "sent": self.sent,
                "failed": self.failed,
                "dropped": self.dropped,
                "throttled": self.throttled,
                "skipped": self.skipped,
                "queued": len(self._queue) + len(self._pending),
            }


def _finite(value: float) -> float | None:
    # NaN/inf are not JSON: the backend would reject the whole event over one bad figure.
    return float(value) if math.isfinite(value) else None


def _is_final(event: ProgressEvent) -> bool:
    return event.total > 0 and event.done >= event.total


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
