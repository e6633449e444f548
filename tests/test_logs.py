"""Structured logs: JSON lines carrying job, phase and clip; secrets never logged.

The unit tests pin the formatter and the redactor (pure logic); the end-to-end test reads the log file a
real `picaivid render` writes, with a rejected photo and an API key and callback secret in the
environment, and checks every line.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.logs import JsonFormatter, bind, configure_logging, current_context, secrets_of
from tests.test_cli import picaivid

SECRET_KEY = "sk-live-0123456789abcdef"
CALLBACK_SECRET = "whsec-fedcba9876543210"


def _capture(settings: Settings) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    return stream


@pytest.fixture
def restore_logging() -> Any:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers, root.level = handlers, level


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_lines_are_json_with_the_bound_context(restore_logging: None) -> None:
    stream = _capture(_settings())
    log = logging.getLogger("app.test")
    log.info("outside")
    with bind(job_id=7, phase=2):
        with bind(clip_id=31):
            log.info("clip %s rendered", 31, extra={"renderer": "ken_burns"})
        log.warning("after the clip")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [entry["msg"] for entry in lines] == ["outside", "clip 31 rendered", "after the clip"]
    assert "job_id" not in lines[0]
    assert (lines[1]["job_id"], lines[1]["phase"], lines[1]["clip_id"], lines[1]["renderer"]) == (7, 2, 31, "ken_burns")
    assert (lines[2]["job_id"], lines[2]["phase"], "clip_id" in lines[2], lines[2]["level"]) == (7, 2, False, "warning")
    assert current_context() == {}


def test_context_belongs_to_the_thread_that_bound_it(restore_logging: None) -> None:
    seen: dict[str, dict[str, int]] = {}

    def other() -> None:
        seen["other"] = current_context()

    with bind(job_id=1):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        seen["here"] = current_context()
    assert seen == {"other": {}, "here": {"job_id": 1}}


def test_secrets_are_redacted_in_messages_arguments_extras_and_tracebacks(restore_logging: None) -> None:
    settings = _settings(
        API_KEY=SECRET_KEY,
        CALLBACK_SECRET=CALLBACK_SECRET,
        DATABASE_URL="postgresql://picaivid:db-pass-4242@db.internal/picaivid",
    )
    assert {SECRET_KEY, CALLBACK_SECRET, "db-pass-4242"} <= set(secrets_of(settings))
    stream = _capture(settings)
    log = logging.getLogger("app.test")
    log.info("key=%s", SECRET_KEY)
    log.info(f"header X-API-Key: {SECRET_KEY}", extra={"auth": f"Bearer {CALLBACK_SECRET}"})
    try:
        raise RuntimeError(f"connect failed for postgresql://picaivid:db-pass-4242@db.internal ({SECRET_KEY})")
    except RuntimeError:
        log.exception("database down")
    text = stream.getvalue()
    for secret in (SECRET_KEY, CALLBACK_SECRET, "db-pass-4242"):
        assert secret not in text
    entries = [json.loads(line) for line in text.splitlines()]
    assert entries[0]["msg"] == "key=***" and entries[1]["auth"] == "Bearer ***"
    assert "RuntimeError: connect failed" in entries[2]["exc"] and "***" in entries[2]["exc"]


def test_text_format_for_people(restore_logging: None) -> None:
    stream = _capture(_settings(LOG_FORMAT="text"))
    with bind(job_id=3, phase=1):
        logging.getLogger("app.test").info("hello")
    assert "INFO app.test [job=3 phase=1]: hello" in stream.getvalue()


def test_unserialisable_extras_do_not_break_a_line() -> None:
    record = logging.LogRecord("app.x", logging.INFO, __file__, 1, "m", None, None)
    record.thing = object()
    assert json.loads(JsonFormatter().format(record))["thing"].startswith("<object")


@pytest.mark.slow
def test_a_real_render_logs_json_lines_with_job_and_phase_and_no_secret(tmp_path: Path) -> None:
    from app.samples import make_sample_listing

    listing = make_sample_listing(
        tmp_path / "listing",
        width=640,
        height=427,
        music_seconds=12,
        bpm=120.0,
        seed=2,
        rooms=["exterior", "kitchen"],
        workers=1,
    )
    (listing.photos_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    env = {
        "API_KEY": SECRET_KEY,
        "CALLBACK_SECRET": CALLBACK_SECRET,
        "LOG_LEVEL": "DEBUG",
        "OUTPUT_RESOLUTION": "640x360",
        "OUTPUT_X264_PRESET": "veryfast",
        "CLIP_X264_PRESET": "ultrafast",
    }
    out = tmp_path / "out.mp4"
    result = picaivid(
        ["render", str(listing.photos_dir), "--music", str(listing.music_path), "-o", str(out), "-t", "5"],
        tmp_path,
        env,
    )
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "logs" / "picaivid.log").read_text()
    assert SECRET_KEY not in text and CALLBACK_SECRET not in text
    entries = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    phase_ends = [e for e in entries if e["logger"] == "app.orchestrator.core" and "completed in" in e["msg"]]
    assert sorted(e["phase"] for e in phase_ends) == [1, 2, 3, 4]
    assert all(e["job_id"] == 1 for e in phase_ends)
    rejected = [e for e in entries if "broken.jpg" in e["msg"]]
    assert rejected and all(e.get("job_id") == 1 for e in rejected), "the rejected photo and its reason are logged"
