"""The renderer ladder in fleet mode: workers advertise their renderers in the `workers` table, the
metrics count renders and downgrades, and a fleet without a GPU queue renders phase 2 on its CPU
workers (real PostgreSQL + moto_server for the fleet parts)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.config import Settings
from app.db.models import OutboxMessage
from app.db.models import Worker as WorkerRow
from app.db.session import session_scope
from app.orchestrator.fleet import renders_on_cpu_fleet
from app.services.metrics import PicaividCollector, attempt_reason_code, downgrade_counts, reason_code
from app.worker.registry import CAPABILITIES_KEY, worker_capabilities
from tests.fleet_support import Fleet, completed, fleet, wait_for

__all__ = ["fleet"]  # fixtures used by name


# ---------------------------------------------------------------------------------------------
# reason codes (pure)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("no depth map for this photo", "no_depth"),
        ("OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "out_of_memory"),
        ("torch.cuda.OutOfMemoryError: boom", "out_of_memory"),
        ("RuntimeError: ffmpeg exited with status 1", "RuntimeError"),
        ("app.errors.StorageError: gone", "StorageError"),
        ("clip is frozen: first and last frames are identical (diff 0.00) ", "frozen"),
        ("frame 12 is black (mean luma 1.0, expected 120)", "black_frame"),
        ("frame 3 does not decode", "undecodable"),
        ("frame 3 failed to decode: bad data", "undecodable"),
        ("119 frames, expected 120", "frame_count"),
        ("25 fps, expected 30", "fps"),
        ("size 640x480, expected 640x360", "size"),
        ("codec hevc, expected h264", "codec"),
        ("clip does not show the planned view of the photo: score 0.31 < 0.6", "wrong_view"),
        ("score 0.41 below 0.6", "low_score"),
        ("Something Unexpected happened with a very long identifier_that_goes_on_and_on_and_on", "something"),
        ("", "other"),
        ("  42 !!", "other"),
    ],
)
def test_reason_codes_are_short_and_stable(reason: str, code: str) -> None:
    assert reason_code(reason) == code
    assert len(reason_code("x" * 500)) <= 40


def test_downgrades_count_failed_attempts_once_each() -> None:
    logs: list[Any] = [
        [
            {"renderer": "ltx2", "passed": False, "reasons": ["RuntimeError: a", "score 0.1 below 0.6"]},
            {"renderer": "parallax", "passed": False, "declined": True, "reasons": []},
            {"renderer": "ken_burns", "passed": True, "reasons": []},
        ],
        [{"renderer": "ken_burns", "ok": False, "reason": "25 fps, expected 30"}, "junk", {"passed": False}],
        None,
        {"not": "a list"},
    ]
    assert downgrade_counts(logs) == {
        ("ltx2", "RuntimeError"): 1,  # by its first reason only: one failed attempt, one count
        ("parallax", "declined"): 1,
        ("ken_burns", "fps"): 1,
        ("unknown", "rejected"): 1,
    }
    assert attempt_reason_code({"passed": False, "reasons": [7]}) == "rejected"


def test_cpu_renders_phase_2_only_when_the_fleet_has_no_gpu_queue(tmp_path: Path) -> None:
    from tests.conftest import make_settings

    def settings(cpu: str, gpu: str) -> Settings:
        return make_settings(tmp_path, "sqlite://", SQS_QUEUE_URL=cpu, SQS_GPU_QUEUE_URL=gpu)

    assert renders_on_cpu_fleet(settings("http://sqs/cpu", ""))
    assert not renders_on_cpu_fleet(settings("http://sqs/cpu", "http://sqs/gpu"))
    assert not renders_on_cpu_fleet(settings("", ""))  # embedded mode: not a fleet decision at all


def test_worker_capabilities_reader_tolerates_rows_without_them() -> None:
    assert worker_capabilities({"done": 2}) == {}
    assert worker_capabilities(None) == {}
    assert worker_capabilities({CAPABILITIES_KEY: "junk"}) == {}
    assert worker_capabilities({CAPABILITIES_KEY: {"renderers": ["ken_burns"]}}) == {"renderers": ["ken_burns"]}


# ---------------------------------------------------------------------------------------------
# the fleet (PostgreSQL + moto)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def depth_listing(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Three small photos with their true depth beside them (so parallax can render on a CPU)."""
    from app.samples import make_sample_listing

    return make_sample_listing(
        tmp_path_factory.mktemp("ladder-listing"),
        width=480,
        height=320,
        music_seconds=14.0,
        bpm=120.0,
        seed=9,
        rooms=["exterior", "living_room", "kitchen"],
        depth=True,
    )


def _worker_row(fleet: Fleet, worker_id: str) -> WorkerRow:
    with session_scope(fleet.ctx.sessions) as s:
        row = s.get(WorkerRow, worker_id)
        assert row is not None
        return row


@pytest.mark.postgres
def test_gpu_worker_records_its_renderers_and_why_others_are_missing(fleet: Fleet) -> None:
    from app.worker.main import build_worker

    settings = fleet.settings.model_copy(update={"LTX_ENABLED": False})
    worker = build_worker("gpu", settings)
    worker.record.save()
    counts = _worker_row(fleet, worker.worker_id).counts
    capabilities = worker_capabilities(counts)
    assert capabilities["renderers"] == ["parallax", "ken_burns"]
    assert capabilities["skipped"]["ltx2"] == "LTX_ENABLED is false"
    worker.record.count("done")  # outcome counts and capabilities live side by side
    counts = _worker_row(fleet, worker.worker_id).counts
    assert counts["done"] == 1 and worker_capabilities(counts) == capabilities


@pytest.mark.postgres
@pytest.mark.slow
def test_cpu_only_fleet_renders_phase_2_on_the_cpu_worker(fleet: Fleet, depth_listing: Any) -> None:
    """No GPU queue: the CPU worker runs phases 1-4 for one message, rendering the clips itself with its
    CPU renderers; nothing is staged for a GPU queue; the worker row and the metrics show what it did."""
    from app.worker.main import build_worker

    settings = fleet.settings.model_copy(update={"SQS_GPU_QUEUE_URL": ""})
    worker = build_worker("cpu", settings)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    try:
        job_id = fleet.create_job(depth_listing, target_length=8.0)
        fleet.enqueue(job_id)
        wait_for("the CPU-only fleet to finish the job", completed(fleet, job_id), 300)
    finally:
        worker.request_stop("test over")
        thread.join(30)

    phases = fleet.phases(job_id)
    assert [phases[p].status for p in (1, 2, 3, 4)] == ["completed"] * 4
    assert phases[2].worker == worker.worker_id and phases[2].attempts == 1
    clips = fleet.clips(job_id)
    assert clips and all(c.status == "rendered" for c in clips.values())
    assert {c.model_used for c in clips.values()} <= {"parallax", "ken_burns"}
    assert "parallax" in {c.model_used for c in clips.values()}, [c.render_log for c in clips.values()]
    with session_scope(fleet.ctx.sessions) as s:
        staged = s.scalars(select(OutboxMessage.queue).where(OutboxMessage.job_id == job_id)).all()
    assert "gpu" not in staged
    assert not fleet.gpu.receive(max_messages=10, wait_seconds=0)

    capabilities = worker_capabilities(_worker_row(fleet, worker.worker_id).counts)
    assert capabilities["renderers"] == ["parallax", "ken_burns"] and "ltx2" in capabilities["skipped"]

    families = {f.name: f for f in PicaividCollector(fleet.ctx.sessions, {}).collect()}
    rendered = {
        s.labels["renderer"]: s.value for s in families["picaivid_clips"].samples if s.labels["status"] == "rendered"
    }
    assert sum(rendered.values()) == len(clips)
    offered = {(s.labels["type"], s.labels["renderer"]) for s in families["picaivid_worker_renderers"].samples}
    assert {("cpu", "parallax"), ("cpu", "ken_burns")} <= offered
