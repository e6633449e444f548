"""EC2 Spot interruption notices, read from the instance metadata service (IMDSv2 only).

AWS posts ``spot/instance-action`` about two minutes before it reclaims a Spot instance. The GPU worker
polls for it so it can stop taking messages, hand its clip back to the queue and exit inside the grace
period instead of being killed mid-render. Everything here is defensive: no metadata service (a laptop,
CI, ECS without a host route) simply means no notices, logged once.

IMDSv2 only, on purpose: instances are launched with ``HttpTokens=required``, so an IMDSv1 fallback
would only ever hide a misconfiguration.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from app.config import Settings, get_settings

log = logging.getLogger(__name__)

TOKEN_PATH = "/latest/api/token"
INSTANCE_ACTION_PATH = "/latest/meta-data/spot/instance-action"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
#: The longest token lifetime IMDS grants (6 h); one token then serves thousands of polls.
TOKEN_TTL_SECONDS = 21600


class MetadataUnavailable(Exception):
    """The metadata service did not answer usefully (network error, timeout, refused token, 5xx).
    Distinct from "no notice": the caller keeps polling and keeps the worker running."""


@dataclass(frozen=True)
class SpotNotice:
    """An interruption AWS has scheduled. ``time`` is timezone-aware UTC, or None when the notice could
    not be parsed: then the worker must assume the worst and stop now."""

    action: str
    time: datetime | None

    def seconds_left(self, now: datetime | None = None) -> float:
        """Seconds until AWS acts, never negative; 0 when the time is unknown (stop immediately)."""
        if self.time is None:
            return 0.0
        current = now if now is not None else datetime.now(UTC)
        if current.tzinfo is None:  # a naive "now" is taken as UTC rather than local time
            current = current.replace(tzinfo=UTC)
        return max(0.0, (self.time - current).total_seconds())


def parse_notice(body: str | bytes) -> SpotNotice:
    """Parse an instance-action body. Never raises: a notice we cannot read still means the instance
    is going away, and stopping early is far cheaper than being killed mid-render."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        log.warning("unparseable Spot instance-action body %r: treating it as an immediate notice", body[:200])
        return SpotNotice("unknown", None)
    if not isinstance(doc, dict):
        log.warning("unexpected Spot instance-action body %r: treating it as an immediate notice", doc)
        return SpotNotice("unknown", None)
    action = doc.get("action")
    action = action if isinstance(action, str) and action else "unknown"
    return SpotNotice(action, _parse_time(doc.get("time")))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 accepts AWS's trailing "Z"
    except ValueError:
        log.warning("unparseable Spot notice time %r: treating it as now", value)
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class _ImdsSession:
    """One IMDSv2 conversation: keeps a token and renews it before it lapses, so a poller makes one PUT
    per few hours rather than one per poll."""

    def __init__(self, base_url: str, client: httpx.Client, *, token_ttl_s: int = TOKEN_TTL_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.token_ttl_s = token_ttl_s
        self._token: str | None = None
        self._renew_at = 0.0

    def _fetch_token(self) -> str:
        try:
            resp = self.client.put(self.base_url + TOKEN_PATH, headers={TOKEN_TTL_HEADER: str(self.token_ttl_s)})
        except httpx.HTTPError as exc:
            raise MetadataUnavailable(f"token request failed: {type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200 or not resp.text.strip():
            # 403: IMDS is turned off for this instance; 400/405: not an IMDSv2 endpoint. No v1 fallback.
            raise MetadataUnavailable(f"token request answered HTTP {resp.status_code}")
        # Renew a little early (10% of the TTL, at most a minute) so a poll never races the expiry.
        margin = min(60.0, self.token_ttl_s * 0.1)
        self._token = resp.text.strip()
        self._renew_at = time.monotonic() + self.token_ttl_s - margin
        return self._token

    def _token_now(self) -> str:
        if self._token is None or time.monotonic() >= self._renew_at:
            return self._fetch_token()
        return self._token

    def _get_action(self, token: str) -> httpx.Response:
        try:
            return self.client.get(self.base_url + INSTANCE_ACTION_PATH, headers={TOKEN_HEADER: token})
        except httpx.HTTPError as exc:
            raise MetadataUnavailable(f"instance-action request failed: {type(exc).__name__}: {exc}") from exc

    def fetch(self) -> SpotNotice | None:
        resp = self._get_action(self._token_now())
        if resp.status_code == 401:
            # The token expired or IMDS restarted and forgot it: one fresh token, one more try.
            self._token = None
            resp = self._get_action(self._fetch_token())
        if resp.status_code == 404:
            return None  # the normal case: nothing scheduled
        if resp.status_code == 200:
            return parse_notice(resp.content)
        raise MetadataUnavailable(f"instance-action answered HTTP {resp.status_code}")


def _imds_client(timeout: float) -> httpx.Client:
    # trust_env=False: a link-local metadata address must never be sent through an HTTP(S)_PROXY.
    return httpx.Client(timeout=timeout, trust_env=False)


def fetch_spot_notice(base_url: str, *, timeout: float = 1.0, client: httpx.Client | None = None) -> SpotNotice | None:
    """Ask IMDS once whether an interruption is scheduled: a `SpotNotice`, or None when none is (404).

    Raises `MetadataUnavailable` when the service cannot be reached or refuses us; that is not a notice.
    """
    owned = client is None
    http = client if client is not None else _imds_client(timeout)
    try:
        return _ImdsSession(base_url, http).fetch()
    finally:
        if owned:
            http.close()


class SpotNoticePoller(threading.Thread):
    """Polls IMDS every ``interval_s`` on a daemon thread and calls ``on_notice`` once, from this thread,
    on the first notice; then it stops. With an empty ``base_url`` (not on EC2) `start` does nothing.

    ``on_notice`` should only signal (set an event, flag the worker loop): it runs on the poll thread.
    """

    def __init__(
        self,
        base_url: str,
        interval_s: float | None,
        on_notice: Callable[[SpotNotice], None],
        *,
        timeout: float = 1.0,
        client: httpx.Client | None = None,
        token_ttl_s: int = TOKEN_TTL_SECONDS,
    ) -> None:
        super().__init__(name="spot-notice-poller", daemon=True)
        self.base_url = base_url.strip().rstrip("/")
        self.interval_s = interval_s if interval_s is not None else get_settings().SPOT_POLL_SECONDS
        self.on_notice = on_notice
        self.timeout = timeout
        self.token_ttl_s = token_ttl_s
        self._client = client
        self._stop_event = threading.Event()
        self._started_polling = False
        self._reported_unavailable = False
        self._reported_answering = False
        #: Polls made so far (tests and metrics); stays 0 when disabled.
        self.polls = 0
        #: The notice received, once one has been.
        self.notice: SpotNotice | None = None

    @classmethod
    def from_settings(cls, settings: Settings, on_notice: Callable[[SpotNotice], None]) -> SpotNoticePoller:
        """The worker's usual construction: SPOT_TERMINATION_ENDPOINT every SPOT_POLL_SECONDS."""
        return cls(settings.SPOT_TERMINATION_ENDPOINT, settings.SPOT_POLL_SECONDS, on_notice)

    @property
    def enabled(self) -> bool:
        return bool(self.base_url)

    def start(self) -> None:
        """Start polling; a no-op without a base URL, so callers need no "am I on EC2" branch."""
        if not self.enabled:
            log.debug("SPOT_TERMINATION_ENDPOINT is empty: Spot notices off")
            return
        self._started_polling = True
        super().start()

    def join(self, timeout: float | None = None) -> None:
        # Thread.join raises on a thread that never started; a disabled poller is "finished" at once.
        if self._started_polling:
            super().join(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling and wait (up to ``timeout``) for the thread; safe to call more than once."""
        self._stop_event.set()
        if timeout is not None and self._started_polling and threading.current_thread() is not self:
            self.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        owned = self._client is None
        client = self._client if self._client is not None else _imds_client(self.timeout)
        session = _ImdsSession(self.base_url, client, token_ttl_s=self.token_ttl_s)
        try:
            while not self._stop_event.is_set():
                notice = self._poll(session)
                if notice is not None:
                    self.notice = notice
                    log.warning(
                        "Spot interruption notice: %s at %s (%.0f s left)",
                        notice.action,
                        notice.time.isoformat() if notice.time else "unknown time",
                        notice.seconds_left(),
                    )
                    self._stop_event.set()  # exactly once: no further polls, no second callback
                    try:
                        self.on_notice(notice)
                    except Exception:  # the poll thread must not die with a traceback on stderr
                        log.exception("Spot notice handler failed")
                    return
                self._stop_event.wait(self.interval_s)
        finally:
            if owned:
                client.close()

    def _poll(self, session: _ImdsSession) -> SpotNotice | None:
        self.polls += 1
        try:
            notice = session.fetch()
        except MetadataUnavailable as exc:
            # Off EC2 this fails on every poll; one INFO line says so, the rest stay at DEBUG.
            if not self._reported_unavailable:
                self._reported_unavailable = True
                log.info("no instance metadata at %s (%s): Spot notices off until it answers", self.base_url, exc)
            else:
                log.debug("instance metadata still unavailable at %s: %s", self.base_url, exc)
            return None
        except Exception:  # anything unforeseen: keep the worker alive, keep polling
            log.debug("Spot notice poll failed", exc_info=True)
            return None
        if self._reported_unavailable and not self._reported_answering:
            self._reported_answering = True
            log.info("instance metadata at %s answering: Spot notices on", self.base_url)
        return notice
