"""Spot interruption notices against a fake IMDSv2 (tests/fakes/imds.py): no AWS, no sleeps beyond a poll."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.worker.spot import (
    MetadataUnavailable,
    SpotNotice,
    SpotNoticePoller,
    _ImdsSession,
    fetch_spot_notice,
    parse_notice,
)
from tests.fakes.imds import FakeImds


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    with FakeImds() as fake:
        yield fake


def _closed_port_url() -> str:
    """A local port nothing listens on: connections are refused at once (no timeout to wait out)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --- fetch_spot_notice ----------------------------------------------------------------------


def test_fetch_returns_none_when_nothing_is_scheduled(imds: FakeImds) -> None:
    assert fetch_spot_notice(imds.url) is None
    assert imds.count("token") == 1
    assert imds.count("action_404") == 1


def test_fetch_parses_a_scheduled_notice(imds: FakeImds) -> None:
    at = datetime(2026, 11, 22, 8, 22, tzinfo=UTC)
    imds.schedule("terminate", at=at)
    notice = fetch_spot_notice(imds.url + "/")  # a trailing slash on the base URL is harmless
    assert notice == SpotNotice("terminate", at)
    assert notice is not None and notice.time is not None and notice.time.tzinfo is not None
    assert notice.seconds_left(now=at - timedelta(seconds=90)) == pytest.approx(90.0)
    assert notice.seconds_left(now=at + timedelta(seconds=5)) == 0.0


def test_fake_rejects_tokenless_requests_so_the_token_is_really_sent(imds: FakeImds) -> None:
    with httpx.Client() as client:
        assert client.get(imds.url + "/latest/meta-data/spot/instance-action").status_code == 401
        assert client.put(imds.url + "/latest/api/token").status_code == 400  # no TTL header
    assert fetch_spot_notice(imds.url) is None  # ours got through: 404, not 401
    assert imds.count("unauthorized") == 1
    assert imds.count("action_404") == 1


def test_expired_token_is_renewed_once(imds: FakeImds) -> None:
    with httpx.Client() as client:
        session = _ImdsSession(imds.url, client)  # the poller's token-caching session
        assert session.fetch() is None
        assert session.fetch() is None
        assert imds.count("token") == 1  # cached across polls
        imds.expire_tokens()  # IMDS forgets it: the next GET is a 401
        imds.schedule("stop")
        notice = session.fetch()
    assert notice is not None and notice.action == "stop"
    assert imds.count("token") == 2
    assert imds.count("unauthorized") == 1


def test_token_is_renewed_before_its_ttl(imds: FakeImds) -> None:
    with httpx.Client() as client:
        session = _ImdsSession(imds.url, client, token_ttl_s=1)  # renewed 0.1 s before it lapses
        assert session.fetch() is None
        time.sleep(0.95)
        assert session.fetch() is None
    assert imds.count("token") == 2
    assert imds.count("unauthorized") == 0


def test_unparseable_notice_means_stop_now(imds: FakeImds) -> None:
    imds.schedule_body("<html>oops</html>")
    notice = fetch_spot_notice(imds.url)
    assert notice == SpotNotice("unknown", None)
    assert notice.seconds_left() == 0.0
    assert parse_notice('{"action": "hibernate", "time": "soon"}') == SpotNotice("hibernate", None)


def test_unreachable_or_disabled_metadata_raises(imds: FakeImds) -> None:
    with pytest.raises(MetadataUnavailable):
        fetch_spot_notice(_closed_port_url())
    imds.disabled = True
    with pytest.raises(MetadataUnavailable, match="403"):
        fetch_spot_notice(imds.url)


# --- SpotNoticePoller -----------------------------------------------------------------------


def test_poller_calls_on_notice_once_soon_after_scheduling(imds: FakeImds) -> None:
    notices: list[SpotNotice] = []
    fired = threading.Event()

    def on_notice(notice: SpotNotice) -> None:
        notices.append(notice)
        fired.set()

    poller = SpotNoticePoller(imds.url, 0.2, on_notice)
    poller.start()
    try:
        assert _wait_for(lambda: poller.polls >= 2)
        assert not fired.is_set()
        scheduled = time.monotonic()
        imds.schedule("terminate")
        assert fired.wait(2.0)
        assert time.monotonic() - scheduled < 0.2 + 0.3  # within about one interval
        poller.join(2.0)
        assert not poller.is_alive()  # it stops polling after the notice
    finally:
        poller.stop(2.0)
    polls = imds.count("action_200")
    time.sleep(0.3)
    assert notices == [poller.notice] and notices[0].action == "terminate"
    assert imds.count("action_200") == polls == 1
    assert imds.count("token") == 1  # one cached token served every poll


def test_poller_survives_unreachable_endpoint_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="app.worker.spot")
    notices: list[SpotNotice] = []
    poller = SpotNoticePoller(_closed_port_url(), 0.02, notices.append)
    poller.start()
    try:
        assert _wait_for(lambda: poller.polls >= 5)
        assert poller.is_alive()
    finally:
        poller.stop(2.0)
    assert not poller.is_alive()
    infos = [r for r in caplog.records if r.name == "app.worker.spot" and r.levelno >= logging.INFO]
    assert len(infos) == 1
    assert "no instance metadata at" in infos[0].getMessage()
    assert "Spot notices off until it answers" in infos[0].getMessage()
    assert notices == []


def test_poller_picks_up_when_metadata_starts_answering(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.worker.spot")
    fired = threading.Event()
    with FakeImds() as fake:
        fake.disabled = True
        poller = SpotNoticePoller(fake.url, 0.02, lambda _n: fired.set())
        poller.start()
        try:
            assert _wait_for(lambda: poller.polls >= 3)
            fake.disabled = False
            fake.schedule("terminate")
            assert fired.wait(2.0)
        finally:
            poller.stop(2.0)
    messages = [r.getMessage() for r in caplog.records if r.name == "app.worker.spot" and r.levelno == logging.INFO]
    assert len(messages) == 2 and "answering" in messages[1]


def test_empty_base_url_never_polls() -> None:
    poller = SpotNoticePoller("", 0.01, lambda _n: pytest.fail("no notice without metadata"))
    assert not poller.enabled
    poller.start()
    time.sleep(0.05)
    assert not poller.is_alive()
    assert poller.polls == 0
    poller.stop(1.0)
    poller.join(1.0)  # harmless on a poller that never started


def test_stop_ends_polling_promptly(imds: FakeImds) -> None:
    poller = SpotNoticePoller(imds.url, 30.0, lambda _n: None)
    poller.start()
    assert _wait_for(lambda: poller.polls >= 1)
    started = time.monotonic()
    poller.stop(2.0)
    assert not poller.is_alive()
    assert time.monotonic() - started < 1.0  # not held up by the 30 s interval
