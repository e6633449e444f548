"""Progress callbacks against a real local HTTP server that records requests and answers from a script.

Backoff sleeps are injected (recorded, not slept) so retries cost nothing; throttle windows are shortened
where a test has to wait one out.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from app.callbacks import CallbackSink
from app.config import Settings
from app.progress import ProgressEvent, safe_emit
from tests.fakes.backend import Backend, serve_backend


@pytest.fixture
def backend() -> Iterator[Backend]:
    with serve_backend() as state:
        yield state


def settings(backend_url: str = "", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "BACKEND_URL": backend_url,
        "API_KEY": "secret-key",
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


def test_posts_json_with_api_key_and_idempotency_key(backend: Backend) -> None:
    sink = CallbackSink(settings(backend.url + "/"), sleep=Sleeps())
    sink(ProgressEvent(7, "phase_started", 2, message="rendering", data={"clips": 12}))
    sink(ProgressEvent(7, "progress", 2, 3, 12, "clip 3"))
    assert sink.flush(5)
    assert (sink.sent, sink.failed, sink.dropped) == (2, 0, 0)

    assert [r.path for r in backend.requests] == ["/internal/picaivid/events"] * 2  # no double slash
    first, second = backend.requests
    for req in backend.requests:
        assert req.headers["X-API-Key"] == "secret-key"
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
