"""Progress callbacks against a real local HTTP server that records requests and answers from a script.

Backoff sleeps are injected (recorded, not slept) so retries cost nothing; throttle windows are shortened
where a test has to wait one out. DNS is injected where a test needs a host name (the machine has no DNS),
and the fake backend listens on 127.0.0.1: job URLs pointing at it need CALLBACK_ALLOW_PRIVATE_NETWORKS.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.callbacks import SIGNATURE_HEADER, CallbackSink, sign, verify_signature
from app.config import Settings
from app.db.migrate import upgrade
from app.db.models import Job
from app.db.session import get_engine, session_factory, session_scope
from app.netguard import CallbackURLError, HostLookupError, check_callback_url
from app.progress import ProgressEvent, safe_emit
from tests.conftest import make_settings
from tests.fakes.backend import Backend, serve_backend

API_KEY = "secret-key-0f3a9c"
SECRET = "whsec-test-7d1e"


@pytest.fixture
def backend() -> Iterator[Backend]:
    with serve_backend() as state:
        yield state


def settings(backend_url: str = "", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "BACKEND_URL": backend_url,
        "API_KEY": API_KEY,
        "CALLBACK_SECRET": SECRET,
        "CALLBACK_MAX_ATTEMPTS": 5,
        "CALLBACK_TIMEOUT_SECONDS": 2.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Sleeps(list[float]):
    """An injected sleep that records the delays instead of waiting them out."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_posts_signed_json_with_an_idempotency_key_and_no_api_key(backend: Backend) -> None:
    sink = CallbackSink(settings(backend.url + "/"), sleep=Sleeps())
    sink(ProgressEvent(7, "phase_started", 2, message="rendering", data={"clips": 12}))
    sink(ProgressEvent(7, "progress", 2, 3, 12, "clip 3"))
    assert sink.flush(5)
    assert (sink.sent, sink.failed, sink.dropped) == (2, 0, 0)

    assert [r.path for r in backend.requests] == ["/internal/picaivid/events"] * 2  # no double slash
    first, second = backend.requests
    for req in backend.requests:
        assert "x-api-key" not in {name.lower() for name in req.headers}
        assert verify_signature(SECRET, req.headers[SIGNATURE_HEADER], req.raw)
        assert req.headers["Content-Type"] == "application/json"
        assert uuid.UUID(req.headers["X-Idempotency-Key"]).version == 4
        assert req.body["idempotency_key"] == req.headers["X-Idempotency-Key"]
    assert first.headers["X-Idempotency-Key"] != second.headers["X-Idempotency-Key"]
    started = first.body
    assert started["job_id"] == 7 and started["event"] == "phase_started"
    assert started["phase"] == 2 and started["phase_name"] == "render"
    assert started["message"] == "rendering" and started["data"] == {"clips": 12}
    assert started["progress"] is None  # no total: no fraction
    assert datetime.fromisoformat(started["sent_at"]).utcoffset() is not None
    step = second.body
    assert (step["event"], step["done"], step["total"], step["progress"]) == ("progress", 3, 12, 0.25)
    assert set(step) == {
        "job_id",
        "event",
        "phase",
        "phase_name",
        "done",
        "total",
        "progress",
        "message",
        "data",
        "sent_at",
        "idempotency_key",
    }
    sink.close(2)


def test_progress_fraction_is_clamped_and_null_safe(backend: Backend) -> None:
    sink = CallbackSink(settings(backend.url), sleep=Sleeps())
    sink(ProgressEvent(1, "progress", 1, 15, 10))
    sink(ProgressEvent(2, "progress", 4, -1, 10))
    sink(ProgressEvent(3, "job_failed", None, float("nan"), 0))
    assert sink.flush(5)
    fractions = {b["job_id"]: (b["progress"], b["done"], b["phase_name"]) for b in backend.bodies()}
    assert fractions == {1: (1.0, 15, "analyze"), 2: (0.0, -1, "assemble"), 3: (None, None, None)}
    sink.close(2)


def test_retries_5xx_with_the_same_idempotency_key(backend: Backend) -> None:
    backend.respond(500, 503)
    sleeps = Sleeps()
    sink = CallbackSink(settings(backend.url), sleep=sleeps)
    sink(ProgressEvent(5, "job_completed"))
    assert sink.flush(5)
    assert (sink.sent, sink.failed) == (1, 0)
    assert len(backend.requests) == 3
    assert len({r.headers["X-Idempotency-Key"] for r in backend.requests}) == 1
    assert len({r.raw for r in backend.requests}) == 1  # byte-identical retries
    # Exponential with jitter: attempt n waits within [base*2^(n-1)/2, base*2^(n-1)].
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0
    sink.close(2)


def test_429_honours_retry_after(backend: Backend) -> None:
    backend.respond((429, {"Retry-After": "3"}), (503, {"Retry-After": "999"}))
    sleeps = Sleeps()
    sink = CallbackSink(settings(backend.url), sleep=sleeps)
    sink(ProgressEvent(5, "job_started"))
    assert sink.flush(5)
    assert sink.sent == 1 and len(backend.requests) == 3
    assert sleeps == [3.0, 30.0]  # as asked, but never beyond the 30 s cap
    sink.close(2)


def test_4xx_is_not_retried(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="app.callbacks")
    backend.respond(400)
    sleeps = Sleeps()
    sink = CallbackSink(settings(backend.url), sleep=sleeps)
    sink(ProgressEvent(5, "phase_completed", 1))
    assert sink.flush(5)
    assert len(backend.requests) == 1 and sleeps == []
    assert (sink.sent, sink.failed) == (0, 1)
    warnings = [r for r in caplog.records if r.name == "app.callbacks"]
    assert len(warnings) == 1 and "HTTP 400" in warnings[0].getMessage()
    sink.close(2)


def test_backend_down_never_raises_and_counts_failures() -> None:
    sleeps = Sleeps()
    sink = CallbackSink(settings(_closed_port_url()), sleep=sleeps)
    started = time.monotonic()
    sink(ProgressEvent(9, "job_started"))
    safe_emit(sink, ProgressEvent(9, "job_failed", message="boom"))
    assert time.monotonic() - started < 0.1  # enqueue only
    assert sink.flush(10)
    assert (sink.sent, sink.failed) == (0, 2)
    assert len(sleeps) == 2 * 4  # five attempts each, four backoffs
    assert max(sleeps) <= 30.0
    sink.close(2)


def test_the_jobs_own_callback_url_wins(backend: Backend) -> None:
    lookups: list[int] = []

    def url_for_job(job_id: int) -> str | None:
        lookups.append(job_id)
        return f"{backend.url}/jobs/{job_id}/hook" if job_id == 1 else None

    sink = CallbackSink(settings(backend.url), url_for_job=url_for_job, sleep=Sleeps())
    for job_id in (1, 2, 1, 2):
        sink(ProgressEvent(job_id, "phase_started", 1))
    assert sink.flush(5)
    assert [r.path for r in backend.requests] == ["/jobs/1/hook", "/internal/picaivid/events"] * 2
    assert sorted(lookups) == [1, 2]  # cached per job
    sink.close(2)


def test_no_url_means_nothing_is_sent(backend: Backend) -> None:
    sink = CallbackSink(settings(""), sleep=Sleeps())
    assert not sink.enabled
    sink(ProgressEvent(1, "job_started"))
    assert sink.flush(1)
    assert sink._thread is None  # a disabled sink never even starts its thread

    # A job-URL lookup but no BACKEND_URL: jobs without their own URL are skipped.
    sink = CallbackSink(settings(""), url_for_job=lambda _job: None, sleep=Sleeps())
    assert sink.enabled
    sink(ProgressEvent(1, "job_started"))
    assert sink.flush(5)
    assert sink.skipped == 1 and sink.sent == 0
    assert backend.requests == []
    sink.close(2)


def test_progress_bursts_are_throttled_but_the_final_figure_goes_out(backend: Backend) -> None:
    sink = CallbackSink(settings(backend.url), sleep=Sleeps())
    for done in range(1, 51):
        sink(ProgressEvent(3, "progress", 2, done, 50))
    assert sink.flush(5)
    bodies = backend.bodies()
    assert len(bodies) <= 3
    assert bodies[0]["done"] == 1 and bodies[-1]["done"] == 50 and bodies[-1]["progress"] == 1.0
    assert sink.throttled + sink.sent == 50
    sink.close(2)


def test_throttled_progress_sends_the_newest_figure_when_the_window_opens(backend: Backend) -> None:
    sink = CallbackSink(settings(backend.url), sleep=Sleeps(), throttle_s=0.2)
    for done in range(1, 11):
        sink(ProgressEvent(3, "progress", 2, done, 20))  # never final: only the window releases it
    sink(ProgressEvent(3, "progress", 3, 1, 20))  # another phase has its own window
    deadline = time.monotonic() + 2
    while len(backend.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted((b["phase"], b["done"]) for b in backend.bodies()) == [(2, 1), (2, 10), (3, 1)]
    sink.close(2)


def test_lifecycle_events_flush_waiting_progress_first(backend: Backend) -> None:
    sink = CallbackSink(settings(backend.url), sleep=Sleeps())
    sink(ProgressEvent(4, "progress", 1, 1, 10))
    sink(ProgressEvent(4, "progress", 1, 7, 10))  # throttled: waits for its window
    sink(ProgressEvent(4, "phase_completed", 1))
    assert sink.flush(5)
    assert [(b["event"], b["done"]) for b in backend.bodies()] == [
        ("progress", 1),
        ("progress", 7),
        ("phase_completed", 0),
    ]
    sink.close(2)


def test_full_queue_drops_old_progress_never_lifecycle_events(backend: Backend) -> None:
    backend.gate.clear()  # the backend stalls: the delivery thread is stuck on the first POST
    sink = CallbackSink(settings(backend.url), sleep=Sleeps(), max_queue=5)
    sink(ProgressEvent(1, "job_started"))
    assert backend.arrived.wait(5)
    lifecycle: list[int] = []
    started = time.monotonic()
    for i in range(40):
        sink(ProgressEvent(100 + i, "progress", 2, 1, 10))  # distinct jobs: no throttling between them
        if i % 4 == 0:
            sink(ProgressEvent(100 + i, "phase_started", 2))
            lifecycle.append(100 + i)
    assert time.monotonic() - started < 0.5  # the caller never waits on the stalled backend
    backend.gate.set()
    assert sink.flush(10)
    bodies = backend.bodies()
    assert sorted(b["job_id"] for b in bodies if b["event"] == "phase_started") == lifecycle
    progress_sent = sum(b["event"] == "progress" for b in bodies)
    assert sink.dropped > 0 and progress_sent + sink.dropped == 40
    assert sink.failed == 0
    sink.close(2)


def test_close_stops_the_thread_and_later_events_are_dropped(backend: Backend) -> None:
    sink = CallbackSink(settings(backend.url), sleep=Sleeps())
    sink(ProgressEvent(1, "job_started"))
    assert sink.close(5)
    assert sink._thread is not None and not sink._thread.is_alive()
    sink(ProgressEvent(1, "job_completed"))
    assert sink.dropped == 1 and len(backend.requests) == 1


def test_close_gives_up_on_a_backend_that_keeps_failing() -> None:
    # Default (abortable) sleep with a long backoff: close must not wait it out.
    sink = CallbackSink(settings(_closed_port_url()), backoff_base_s=20.0)
    sink(ProgressEvent(1, "job_completed"))
    started = time.monotonic()
    assert not sink.close(0.5)
    assert time.monotonic() - started < 2.0
    assert sink.failed == 1


# ---------------------------------------------------------------------------------------------
# Authentication: signed, never the API key
# ---------------------------------------------------------------------------------------------


class FakeDNS:
    """An injected resolver answering from a table a test may change between lookups; records lookups."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, host: str, port: int) -> list[str]:
        with self.lock:
            self.lookups.append(host)
            if host not in self.answers:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return list(self.answers[host])


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _private(backend_url: str = "", **overrides: Any) -> Settings:
    return settings(backend_url, CALLBACK_ALLOW_PRIVATE_NETWORKS=True, **overrides)


def _callback_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "app.callbacks" and r.levelno >= logging.WARNING]


def test_the_api_key_never_reaches_any_callback(backend: Backend) -> None:
    """BACKEND_URL, a job URL on another origin and a job URL by host name (pinned): none of the requests,
    retries included, carries the API key in a header name, a header value or the body."""
    with serve_backend() as other:
        dns = FakeDNS({"hooks.test": ["127.0.0.1"]})
        urls = {2: f"{other.url}/hook", 3: f"http://hooks.test:{_port(other.url)}/named"}
        backend.respond(500)  # one retry, so a retried request is checked too
        sink = CallbackSink(_private(backend.url), url_for_job=urls.get, resolve=dns, sleep=Sleeps())
        for job_id in (1, 2, 3):
            sink(ProgressEvent(job_id, "job_started", data={"listing": "x"}))
            sink(ProgressEvent(job_id, "progress", 2, 5, 5, "clip 5"))
            sink(ProgressEvent(job_id, "job_failed", message="phase 2 (render): boom"))
        assert sink.flush(10)
        recorded = [*backend.requests, *other.requests]
        sink.close(2)
    assert sink.sent == 9 and len(backend.requests) == 4 and len(other.requests) == 6
    for req in recorded:
        assert all(name.lower() != "x-api-key" for name in req.headers), req.headers
        assert all(API_KEY not in value for value in req.headers.values()), req.headers
        assert API_KEY.encode() not in req.raw
        assert verify_signature(SECRET, req.header(SIGNATURE_HEADER), req.raw)
    assert {r.header("Host") for r in other.requests} == {
        f"127.0.0.1:{_port(other.url)}",
        f"hooks.test:{_port(other.url)}",
    }


def test_signatures_verify_only_with_the_secret_the_exact_body_and_a_fresh_timestamp(backend: Backend) -> None:
    backend.respond(503)
    sink = CallbackSink(settings(backend.url), sleep=Sleeps())
    sink(ProgressEvent(5, "job_completed", message="done"))
    assert sink.flush(5)
    sink.close(2)
    first, retry = backend.requests
    assert first.raw == retry.raw  # re-signed per attempt, same bytes
    for req in (first, retry):
        header = req.header(SIGNATURE_HEADER)
        assert header is not None and re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header), header
        t = int(header.split(",")[0][2:])
        assert abs(t - time.time()) < 60
        assert verify_signature(SECRET, header, req.raw)
        assert not verify_signature("whsec-wrong", header, req.raw)
        assert not verify_signature("", header, req.raw)
        tampered = req.raw.replace(b'"job_completed"', b'"job_failed"')
        assert tampered != req.raw and not verify_signature(SECRET, header, tampered)
        assert not verify_signature(SECRET, header, req.raw + b" ")
        assert verify_signature(SECRET, header, req.raw, now=t + 299)
        assert not verify_signature(SECRET, header, req.raw, now=t + 301)  # stale: a replay
        assert not verify_signature(SECRET, header, req.raw, now=t - 301)  # from the future
        assert not verify_signature(SECRET, header, req.raw, tolerance=10, now=t + 11)

    header = first.header(SIGNATURE_HEADER) or ""
    t, mac = int(header.split(",")[0][2:]), header.split("v1=")[1]
    # The scheme as documented: HMAC-SHA256(secret, "<t>." + raw body), hex.
    expected = hmac.new(SECRET.encode(), f"{t}.".encode() + first.raw, hashlib.sha256).hexdigest()
    assert mac == expected and sign(SECRET, first.raw, t) == header
    # A replay with a fresh timestamp on the old MAC fails; so do malformed headers.
    assert not verify_signature(SECRET, f"t={t + 100},v1={mac}", first.raw, now=t + 100)
    for garbage in (None, "", f"v1={mac}", f"t={t}", f"t=abc,v1={mac}", f"t={t},v1=", "junk", f"t=١٢,v1={mac}"):
        assert not verify_signature(SECRET, garbage, first.raw, now=t), garbage
    # Secret rotation: the receiver accepts any one matching v1.
    assert verify_signature(SECRET, f"t={t},v1={'0' * 64},v1={mac}", first.raw, now=t)


def test_without_a_secret_callbacks_go_out_unsigned_locally_with_one_warning(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app.callbacks")
    sink = CallbackSink(settings(backend.url, CALLBACK_SECRET="", ENVIRONMENT="local"), sleep=Sleeps())
    sink(ProgressEvent(1, "job_started"))
    sink(ProgressEvent(1, "job_completed"))
    assert sink.flush(5)
    sink.close(2)
    assert sink.sent == 2
    assert all(r.header(SIGNATURE_HEADER) is None and r.header("X-API-Key") is None for r in backend.requests)
    assert [m for m in _callback_warnings(caplog) if "CALLBACK_SECRET" in m] == [
        "CALLBACK_SECRET is not set: progress callbacks go out unsigned"
    ]


def test_production_without_a_secret_sends_nothing(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="app.callbacks")
    sink = CallbackSink(
        settings(backend.url, CALLBACK_SECRET="", ENVIRONMENT="production"),
        url_for_job=lambda _job: None,
        sleep=Sleeps(),
    )
    assert not sink.enabled and sink.refused
    for kind in ("job_started", "phase_started", "job_completed"):
        sink(ProgressEvent(1, kind, 1))
    assert sink.flush(1)
    assert sink._thread is None and backend.requests == []
    errors = [r for r in caplog.records if r.name == "app.callbacks" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "CALLBACK_SECRET is not set" in errors[0].getMessage()
    assert "disabled" in errors[0].getMessage()

    signed = CallbackSink(settings(backend.url, ENVIRONMENT="production"), sleep=Sleeps())
    signed(ProgressEvent(1, "job_started"))
    assert signed.flush(5)
    signed.close(2)
    assert len(backend.requests) == 1
    assert verify_signature(SECRET, backend.requests[0].header(SIGNATURE_HEADER), backend.requests[0].raw)


# ---------------------------------------------------------------------------------------------
# Where callbacks may go (SSRF): checked at send time, pinned, no redirects
# ---------------------------------------------------------------------------------------------


def test_a_job_url_to_a_forbidden_address_is_refused_when_sending(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """A URL that got past job creation (an old row, a changed setting) is still refused by the worker:
    nothing sent, no retry, one warning saying why."""
    caplog.set_level(logging.WARNING, logger="app.callbacks")
    urls = {1: f"{backend.url}/hook", 2: "http://[::ffff:169.254.169.254]/latest/meta-data/"}
    sleeps = Sleeps()
    sink = CallbackSink(settings(""), url_for_job=urls.get, sleep=sleeps)
    sink(ProgressEvent(1, "job_started"))
    sink(ProgressEvent(2, "job_started"))
    assert sink.flush(5)
    sink.close(2)
    assert backend.requests == []
    assert (sink.sent, sink.failed, sleeps) == (0, 2, [])
    warnings = _callback_warnings(caplog)
    assert len(warnings) == 2
    assert "refused" in warnings[0] and "127.0.0.1 is a loopback address" in warnings[0]
    assert "169.254.169.254" in warnings[1] and "link-local" in warnings[1]


def test_dns_rebinding_after_job_creation_is_caught_when_sending(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app.callbacks")
    url = f"http://hooks.example:{_port(backend.url)}/cb"
    dns = FakeDNS({"hooks.example": ["93.184.216.34"]})
    strict = settings("")
    check_callback_url(url, strict, dns)  # at job creation the name is public: accepted
    dns.answers["hooks.example"] = ["127.0.0.1"]  # then it is re-pointed at the worker's own host
    sleeps = Sleeps()
    sink = CallbackSink(strict, url_for_job=lambda _job: url, resolve=dns, sleep=sleeps)
    sink(ProgressEvent(1, "job_started"))
    assert sink.flush(5)
    sink.close(2)
    assert backend.requests == [] and (sink.failed, sleeps) == (1, [])
    assert dns.lookups == ["hooks.example", "hooks.example"]  # looked up again right before sending
    assert any("127.0.0.1 is a loopback address" in w for w in _callback_warnings(caplog))
    # One forbidden answer among public ones is enough to refuse.
    dns.answers["hooks.example"] = ["93.184.216.34", "10.0.0.7"]
    with pytest.raises(CallbackURLError, match=r"10\.0\.0\.7 is a private address"):
        check_callback_url(url, strict, dns)


def test_the_connection_goes_to_the_checked_address_under_the_url_host_name(backend: Backend) -> None:
    """'hooks.test' exists only in the injected DNS: the request reaching the backend proves the worker
    connected to the address it checked (not to a second lookup), with the URL's name as Host."""
    dns = FakeDNS({"hooks.test": ["127.0.0.1"]})
    url = f"http://hooks.test:{_port(backend.url)}/cb?job=1"
    backend.respond(503)
    sink = CallbackSink(_private(""), url_for_job=lambda _job: url, resolve=dns, sleep=Sleeps())
    sink(ProgressEvent(1, "job_started"))
    sink(ProgressEvent(1, "job_completed"))
    assert sink.flush(5)
    sink.close(2)
    assert sink.sent == 2
    assert [r.path for r in backend.requests] == ["/cb?job=1"] * 3
    assert {r.header("Host") for r in backend.requests} == {f"hooks.test:{_port(backend.url)}"}
    assert dns.lookups == ["hooks.test"] * 3  # before every attempt, the retry included


def test_https_to_a_pinned_address_verifies_the_certificate_of_the_host_name() -> None:
    """TLS goes to the checked address with SNI and certificate verification for the URL's name: a
    certificate for that name passes, one for another name fails."""
    dns = FakeDNS({"hooks.test": ["127.0.0.1"], "elsewhere.test": ["127.0.0.1"]})
    with serve_backend(tls_hostname="hooks.test") as tls:
        client = httpx.Client(verify=ssl.create_default_context(cafile=tls.ca_file))
        urls = {
            1: f"https://hooks.test:{_port(tls.url)}/cb",
            2: f"https://elsewhere.test:{_port(tls.url)}/cb",
        }
        sink = CallbackSink(
            _private("", CALLBACK_MAX_ATTEMPTS=1), url_for_job=urls.get, resolve=dns, client=client, sleep=Sleeps()
        )
        sink(ProgressEvent(1, "job_started"))
        sink(ProgressEvent(2, "job_started"))
        assert sink.flush(10)
        sink.close(2)
        client.close()
        assert (sink.sent, sink.failed) == (1, 1)
        assert [r.header("Host") for r in tls.requests] == [f"hooks.test:{_port(tls.url)}"]


def test_redirects_are_never_followed(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="app.callbacks")
    dns = FakeDNS({"hooks.test": ["127.0.0.1"]})
    with serve_backend() as target:
        backend.respond(
            (302, {"Location": f"{target.url}/stolen"}),
            (307, {"Location": "http://169.254.169.254/latest/meta-data/iam/"}),
        )
        sleeps = Sleeps()
        job_url = f"http://hooks.test:{_port(backend.url)}/hook"
        sink = CallbackSink(
            _private(backend.url), url_for_job=lambda j: job_url if j == 2 else None, resolve=dns, sleep=sleeps
        )
        sink(ProgressEvent(1, "job_started"))  # BACKEND_URL
        sink(ProgressEvent(2, "job_started"))  # a pinned job URL
        assert sink.flush(5)
        sink.close(2)
        assert target.requests == []
    assert len(backend.requests) == 2 and (sink.failed, sleeps) == (2, [])
    assert sum("redirects are not followed" in w for w in _callback_warnings(caplog)) == 2


# ---------------------------------------------------------------------------------------------
# Checking callback_url at job creation
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    """The API with default (strict) callback settings on a migrated SQLite file."""
    from app.api.main import create_app

    tmp = tmp_path_factory.mktemp("callback-api")
    url = f"sqlite:///{tmp / 'picaivid.db'}"
    upgrade(url)
    with TestClient(create_app(make_settings(tmp, url, API_KEY=API_KEY))) as client:
        client.headers["X-API-Key"] = API_KEY
        yield client, url
    get_engine(url).dispose()


def _error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of an API error, in the ``{"error": {"code", "message"}}`` shape or the older
    ``{"detail", "error"}`` one (validation errors: code ``ValidationError``)."""
    body = response.json()
    if isinstance(body.get("error"), dict):
        return body["error"]["code"], body["error"]["message"]
    detail = body["detail"]
    return ("ValidationError", str(detail)) if isinstance(detail, list) else (body.get("error", ""), detail)


def _job_body(callback_url: str) -> dict[str, Any]:
    return {"listing_id": "l-1", "photos": [{"uri": "uploads/a.jpg"}], "enqueue": False, "callback_url": callback_url}


#: (URL, what the refusal says). Every one of these would let a job's creator reach inside the network.
FORBIDDEN_CALLBACKS = [
    ("http://127.0.0.1:9999/latest/meta-data/", "127.0.0.1 is a loopback address"),
    ("http://127.8.9.10/hook", "127.8.9.10 is a loopback address"),
    ("http://localhost:3000/hook", "is a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://169.254.0.1/", "is a link-local address"),
    ("http://10.0.0.5/hook", "10.0.0.5 is a private address"),
    ("http://172.16.0.1/hook", "172.16.0.1 is a private address"),
    ("http://172.31.255.254/hook", "172.31.255.254 is a private address"),
    ("https://192.168.1.1/hook", "192.168.1.1 is a private address"),
    ("http://100.64.0.1/hook", "100.64.0.1 is a shared (CGNAT) address"),
    ("http://100.127.255.1/hook", "is a shared (CGNAT) address"),
    ("http://0.0.0.0:8000/", "0.0.0.0 is an unspecified address"),
    ("http://224.0.0.251/", "224.0.0.251 is a multicast address"),
    ("http://255.255.255.255/", "is a reserved address"),
    ("http://[::1]:9999/", "::1 is a loopback address"),
    ("http://[::]/", ":: is an unspecified address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://[fc00::1]/", "fc00::1 is a private address"),
    ("http://[fd12:3456:789a::1]/", "is a private address"),
    ("http://[ff02::1]/", "ff02::1 is a multicast address"),
    ("http://[::ffff:127.0.0.1]/", "(carrying 127.0.0.1) is a loopback address"),
    ("http://[::ffff:a9fe:a9fe]/latest/", "(carrying 169.254.169.254) is a link-local address"),
    ("http://[::ffff:10.1.2.3]/", "(carrying 10.1.2.3) is a private address"),
    ("http://[64:ff9b::7f00:1]/", "(carrying 127.0.0.1) is a loopback address"),
    ("http://[::ffff:0:127.0.0.1]/", "(carrying 127.0.0.1) is a loopback address"),
    ("http://[::127.0.0.1]/", "(carrying 127.0.0.1) is a loopback address"),
    ("http://[2002:a9fe:a9fe::1]/", "(carrying 169.254.169.254) is a link-local address"),
    ("http://2130706433/", "non-standard form"),
    ("http://0x7f.1/", "non-standard form"),
    ("http://0x7f000001/", "non-standard form"),
    ("http://0177.0.0.1/", "is not a valid URL"),
    ("http://127.1/", "non-standard form"),
    ("http://127.0.0.1./", "non-standard form"),
    ("http://017700000001/", "non-standard form"),
    ("http://user:pass@hooks.example.com/", "must not carry a user name or password"),
    ("http://hooks.example.com@127.0.0.1/", "must not carry a user name or password"),
    ("http://hooks.example.com\\@127.0.0.1/", "contains whitespace, a backslash or a control character"),
    ("http://no-such-host.invalid/hook", "does not resolve"),
]
#: Refused by the request schema already (FastAPI's list-shaped 422), and by the checker for other callers.
FORBIDDEN_SCHEMES = [
    ("ftp://hooks.example.com/x", "is not an http:// or https:// URL"),
    ("file:///etc/passwd", "is not an http:// or https:// URL"),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "is not an http:// or https:// URL"),
    ("https:///no-host", "has no host"),
]


@pytest.mark.parametrize(("url", "why"), FORBIDDEN_CALLBACKS, ids=[u for u, _ in FORBIDDEN_CALLBACKS])
def test_job_creation_refuses_callback_urls_that_reach_inside(
    strict_api: tuple[TestClient, str], url: str, why: str
) -> None:
    client, db_url = strict_api
    response = client.post("/internal/jobs", json=_job_body(url))
    assert response.status_code == 422, response.text
    code, message = _error(response)
    assert code in ("CallbackURLError", "HostLookupError") and "\n" not in message, response.text
    assert message.startswith(f"callback_url {url!r}") and why in message, message
    assert "uploads/a.jpg" not in message  # refused before the inputs are even looked at
    with pytest.raises((CallbackURLError, HostLookupError), match=re.escape(why)):
        check_callback_url(url, settings(""))
    with session_scope(session_factory(db_url)) as s:
        assert s.query(Job).count() == 0


@pytest.mark.parametrize(("url", "why"), FORBIDDEN_SCHEMES, ids=[u for u, _ in FORBIDDEN_SCHEMES])
def test_non_http_callback_urls_are_refused(strict_api: tuple[TestClient, str], url: str, why: str) -> None:
    client, _ = strict_api
    response = client.post("/internal/jobs", json=_job_body(url))
    assert response.status_code == 422 and _error(response)[0] == "ValidationError", response.text
    with pytest.raises(CallbackURLError, match=re.escape(why)):
        check_callback_url(url, settings(""))


def test_private_networks_stay_closed_to_metadata_and_odd_spellings() -> None:
    """CALLBACK_ALLOW_PRIVATE_NETWORKS opens loopback, private and CGNAT ranges, nothing more."""
    dns = FakeDNS({"rails.internal": ["10.1.2.3"]})
    private = _private("")
    for url in ("http://127.0.0.1:8080/", "http://[::1]/", "http://rails.internal/cb", "http://100.64.1.1/"):
        check_callback_url(url, private, dns)
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://2130706433/",
        "http://user:pw@127.0.0.1/",
    ):
        with pytest.raises(CallbackURLError):
            check_callback_url(url, private, dns)


def test_allowed_hosts_admit_exactly_what_they_list() -> None:
    dns = FakeDNS({"hooks.example": ["93.184.216.34"], "sub.hooks.corp": ["10.9.9.9"], "rails.internal": ["10.1.2.3"]})
    strict = settings("")
    check_callback_url("https://hooks.example/cb", strict, dns)  # a public name
    check_callback_url("http://93.184.216.34:8080/cb", strict, dns)
    check_callback_url("https://[2606:4700:4700::1111]/cb", strict, dns)
    with pytest.raises(CallbackURLError, match=r"10\.1\.2\.3 is a private address"):
        check_callback_url("https://rails.internal/cb", strict, dns)

    listed = settings("", CALLBACK_ALLOWED_HOSTS="Rails.Internal, .hooks.corp, 10.20.0.0/16")
    before = len(dns.lookups)
    check_callback_url("https://rails.internal/cb", listed, dns)  # a listed name is trusted as named
    check_callback_url("https://sub.hooks.corp/cb", listed, dns)
    assert len(dns.lookups) == before
    check_callback_url("http://10.20.3.4/cb", listed, dns)
    for url in ("https://hooks.example/cb", "http://10.21.0.1/", "http://93.184.216.34/", "https://hooks.corp.evil/"):
        with pytest.raises((CallbackURLError, HostLookupError)):
            check_callback_url(url, listed, dns)
    with pytest.raises(CallbackURLError, match=r"93\.184\.216\.34 is not in CALLBACK_ALLOWED_HOSTS"):
        check_callback_url("https://hooks.example/cb", listed, dns)

    # BACKEND_URL's origin (scheme, host, port) is the operator's: trusted; its other ports are not.
    backend_on_lan = settings("http://10.0.0.9:3000")
    check_callback_url("http://10.0.0.9:3000/jobs/7/events", backend_on_lan, dns)
    with pytest.raises(CallbackURLError, match=r"10\.0\.0\.9 is a private address"):
        check_callback_url("http://10.0.0.9:3001/", backend_on_lan, dns)


def test_job_creation_accepts_a_local_callback_only_with_private_networks_allowed(
    tmp_path: Path, backend: Backend
) -> None:
    from app.api.main import create_app

    url = f"sqlite:///{tmp_path / 'picaivid.db'}"
    upgrade(url)
    callback = f"{backend.url}/hook"
    for allow, expected in ((False, 422), (True, 201)):
        app_settings = make_settings(tmp_path, url, API_KEY=API_KEY, CALLBACK_ALLOW_PRIVATE_NETWORKS=allow)
        uploads = Path(app_settings.LOCAL_STORAGE_PATH) / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (90, 120, 150)).save(uploads / "a.jpg")
        with TestClient(create_app(app_settings)) as client:
            response = client.post("/internal/jobs", json=_job_body(callback), headers={"X-API-Key": API_KEY})
        assert response.status_code == expected, response.text
    with session_scope(session_factory(url)) as s:
        assert [job.callback_url for job in s.query(Job).all()] == [callback]
    get_engine(url).dispose()
