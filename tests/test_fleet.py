"""Fleet mode against real PostgreSQL and moto_server (SQS + S3): workers as real processes where a signal
or a crash is the point, in-process workers where the test needs to reach inside.

Every wait is bounded (`wait_for`), so a broken fleet fails a test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.db.models import Clip, Job, JobPhase, OutboxMessage, Photo, Timeline
from app.db.models import Worker as WorkerRow
from app.db.session import session_scope
from app.media.ffmpeg import probe
from app.phases.base import PhaseContext
from app.queue.messages import JobMessage
from app.queue.sqs import ReceivedMessage, SqsQueue, provision_queue, sqs_client
from app.services.jobs import PhotoInput, create_job
from app.storage import S3Storage
from app.worker.handlers import HandlerContext, InFlight, handle_cpu
from app.worker.loop import Worker
from tests.conftest import _truncate, make_context, make_settings
from tests.fakes.backend import serve_backend

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_listing(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from app.samples import make_sample_listing

    out = tmp_path_factory.mktemp("fleet-listing")
    return make_sample_listing(out, width=480, height=320, music_seconds=18.0, bpm=120.0, seed=5,
                               rooms=["exterior", "living_room", "kitchen", "bedroom_a"])


@dataclass
class Fleet:
    settings: Settings
    ctx: PhaseContext
    cpu: SqsQueue
    gpu: SqsQueue
    cpu_dlq_url: str
    gpu_dlq_url: str
    tmp: Path
    procs: list[subprocess.Popen[bytes]]

    def env(self, **overrides: object) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in self.settings.model_dump().items():
            if value is None or key in ("CORS_ORIGINS",):
                continue
            env[key] = str(value)
        env["CORS_ORIGINS"] = "[]"
        env.update({k: str(v) for k, v in overrides.items()})
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def spawn(self, worker_type: str, name: str, **overrides: object) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - the process owns it
        proc = subprocess.Popen([sys.executable, "-m", "app.worker", "--type", worker_type], cwd=ROOT,
                                env=self.env(**overrides), stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def create_job(self, listing: Any, **kwargs: Any) -> int:
        photos = [PhotoInput(path=p) for p in listing.photo_paths]
        return create_job(self.ctx, listing_id=f"fleet-{uuid.uuid4().hex[:6]}", photos=photos,
                          music=listing.music_path, target_length=kwargs.pop("target_length", 12.0), **kwargs)

    def enqueue(self, job_id: int, start_phase: int | None = None) -> str:
        body: dict[str, Any] = {"job_id": job_id, "action": "run"}
        if start_phase is not None:
            body["start_phase"] = start_phase
        return self.cpu.send(json.dumps(body))

    def job(self, job_id: int) -> Job:
        with session_scope(self.ctx.sessions) as s:
            job = s.get(Job, job_id)
            assert job is not None
            return job

    def phases(self, job_id: int) -> dict[int, JobPhase]:
        with session_scope(self.ctx.sessions) as s:
            return {p.phase: p for p in s.scalars(select(JobPhase).where(JobPhase.job_id == job_id))}

    def clips(self, job_id: int) -> dict[int, Clip]:
        with session_scope(self.ctx.sessions) as s:
            return {c.id: c for c in s.scalars(select(Clip).where(Clip.job_id == job_id))}


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, fleet: Fleet | None = None,
             logs: tuple[str, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    detail = "".join(f"\n--- {name} ---\n{fleet.log(name)[-3000:]}" for name in logs) if fleet else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")


@pytest.fixture
def fleet(tmp_path: Path, postgres_url: str, aws_endpoint: str, s3_bucket: str) -> Iterator[Fleet]:
    _truncate(postgres_url)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        tmp_path, postgres_url, S3_BUCKET=s3_bucket, AWS_ENDPOINT_URL=aws_endpoint,
        AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        SQS_VISIBILITY_TIMEOUT=6, SQS_WAIT_SECONDS=1, SQS_MAX_RECEIVES=3, WORKER_HEARTBEAT_SECONDS=1.0,
        JOB_LEASE_SECONDS=5, CLIP_LEASE_SECONDS=5, RETRY_BACKOFF_BASE_SECONDS=1.0, RETRY_BACKOFF_MAX_SECONDS=2.0,
        SHUTDOWN_GRACE_SECONDS=6.0, SPOT_TERMINATION_ENDPOINT="", SPOT_POLL_SECONDS=0.3)
    client = sqs_client(settings)
    cpu_url, cpu_dlq = provision_queue(client, f"{prefix}-cpu", max_receives=settings.SQS_MAX_RECEIVES,
                                       visibility_timeout=settings.SQS_VISIBILITY_TIMEOUT)
    gpu_url, gpu_dlq = provision_queue(client, f"{prefix}-gpu", max_receives=settings.SQS_MAX_RECEIVES,
                                       visibility_timeout=settings.SQS_VISIBILITY_TIMEOUT)
    settings = settings.model_copy(update={"SQS_QUEUE_URL": cpu_url, "SQS_GPU_QUEUE_URL": gpu_url})
    ctx = make_context(settings, S3Storage(s3_bucket, endpoint_url=aws_endpoint))
    fleet = Fleet(settings, ctx, SqsQueue(client, cpu_url), SqsQueue(client, gpu_url), cpu_dlq, gpu_dlq,
                  tmp_path, [])
    yield fleet
    for proc in fleet.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class InProcessWorkers:
    """Workers polling on background threads of the test process (no signals; stop via flags)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.workers: list[Worker] = []
        self.threads: list[threading.Thread] = []

    def start(self, worker_type: str, count: int = 1) -> list[Worker]:
        started = []
        for _ in range(count):
            ctx = make_context(self.fleet.settings, self.fleet.ctx.storage)
            queue = self.fleet.cpu if worker_type == "cpu" else self.fleet.gpu
            worker = Worker(ctx, worker_type, SqsQueue(queue.client, queue.url))  # type: ignore[arg-type]
            thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
            thread.start()
            self.workers.append(worker)
            self.threads.append(thread)
            started.append(worker)
        return started

    def stop(self) -> None:
        for worker in self.workers:
            worker.request_stop("test over")
        for thread in self.threads:
            thread.join(30)


@pytest.fixture
def inproc(fleet: Fleet) -> Iterator[InProcessWorkers]:
    workers = InProcessWorkers(fleet)
    yield workers
    workers.stop()


def completed(fleet: Fleet, job_id: int) -> Callable[[], bool]:
    def check() -> bool:
        status = fleet.job(job_id).status
        if status == "failed":
            raise AssertionError(f"job failed: {fleet.job(job_id).error}")
        return status == "completed"
    return check


def assert_video(fleet: Fleet, job_id: int) -> None:
    job = fleet.job(job_id)
    assert job.output_uri and job.output_uri.startswith("s3://")
    local = fleet.ctx.storage.local_path(fleet.ctx.storage.resolve_key(job.output_uri), fleet.tmp / "out")
    info = probe(local)
    assert info.video is not None and (info.video.width, info.video.height) == (640, 360)
    with session_scope(fleet.ctx.sessions) as s:
        timeline = s.scalars(select(Timeline).where(Timeline.job_id == job_id)
                             .order_by(Timeline.version.desc())).first()
        assert timeline is not None and timeline.total_duration
        assert abs(info.duration - timeline.total_duration) < 0.1
    assert info.audio is not None and info.audio.codec == "aac"


def row_counts(fleet: Fleet, job_id: int) -> dict[str, int]:
    with session_scope(fleet.ctx.sessions) as s:
        return {
            "photos": s.scalar(select(func.count()).select_from(Photo).where(Photo.job_id == job_id)) or 0,
            "clips": s.scalar(select(func.count()).select_from(Clip).where(Clip.job_id == job_id)) or 0,
            "timelines": s.scalar(select(func.count()).select_from(Timeline).where(Timeline.job_id == job_id)) or 0,
            "phases": s.scalar(select(func.count()).select_from(JobPhase).where(JobPhase.job_id == job_id)) or 0,
        }


def dlq_bodies(fleet: Fleet, url: str) -> list[dict[str, Any]]:
    queue = SqsQueue(fleet.cpu.client, url)
    bodies = []
    for _ in range(3):
        for m in queue.receive(max_messages=10, wait_seconds=1, visibility_timeout=0):
            bodies.append(json.loads(m.body))
        if bodies:
            break
    return bodies


# ---------------------------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------------------------


def test_full_fleet_run_api_cpu_two_gpu_workers(fleet: Fleet, tiny_listing: Any) -> None:
    """The API creates the job from S3 URIs and enqueues it; a CPU worker runs phase 1 and fans out; two
    GPU worker processes render the clips; the last clip hands phases 3 and 4 back to the CPU worker."""
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    s3 = boto3.client("s3", endpoint_url=fleet.settings.AWS_ENDPOINT_URL, region_name="us-east-1")
    uris = []
    for path in [*tiny_listing.photo_paths, tiny_listing.music_path]:
        key = f"uploads/{uuid.uuid4().hex[:6]}/{path.name}"
        s3.upload_file(str(path), fleet.settings.S3_BUCKET, key)
        uris.append(f"s3://{fleet.settings.S3_BUCKET}/{key}")
    settings = fleet.settings.model_copy(update={"API_KEY": "secret"})
    with TestClient(create_app(settings)) as api:
        response = api.post("/internal/jobs", headers={"X-API-Key": "secret"}, json={
            "listing_id": "fleet-e2e", "photos": [{"uri": u} for u in uris[:-1]], "music_uri": uris[-1],
            "target_length": 12, "enqueue": True})
        assert response.status_code == 201, response.text
        job_id = response.json()["job_id"]

        with serve_backend() as backend:
            callbacks = {"BACKEND_URL": backend.url, "API_KEY": "secret"}
            fleet.spawn("cpu", "cpu1", **callbacks)
            fleet.spawn("gpu", "gpu1", **callbacks)
            fleet.spawn("gpu", "gpu2", **callbacks)
            wait_for("the job to complete", completed(fleet, job_id), 180, fleet, ("cpu1", "gpu1", "gpu2"))
            wait_for("the job_completed callback", lambda: any(b["event"] == "job_completed"
                                                               for b in backend.bodies()), 15)
            events = backend.bodies()
            requests = list(backend.requests)

        body = api.get(f"/internal/jobs/{job_id}", headers={"X-API-Key": "secret"}).json()
        assert body["status"] == "completed"
        assert body["artifacts"]["video"].startswith("http")  # pre-signed S3 URL

    assert_video(fleet, job_id)
    clips = fleet.clips(job_id)
    assert len(clips) == len(tiny_listing.photo_paths)
    assert all(c.status == "rendered" and c.render_attempts == 1 for c in clips.values())
    # Progress callbacks: every phase's start and end, clip progress, the job's end; keyed and authenticated.
    seen = {(e["event"], e["phase"]) for e in events}
    for phase in (1, 2, 3, 4):
        assert ("phase_started", phase) in seen and ("phase_completed", phase) in seen, (phase, sorted(seen))
    assert any(e["event"] == "progress" and e["phase"] == 2 and e["done"] == e["total"] == len(clips)
               for e in events)
    assert all(r.headers.get("X-API-Key") == "secret" for r in requests)
    keys = [r.headers.get("X-Idempotency-Key") for r in requests]
    assert all(keys) and len(set(keys)) == len(keys)
    phases = fleet.phases(job_id)
    assert [phases[p].status for p in (1, 2, 3, 4)] == ["completed"] * 4
    assert phases[2].details["mode"] == "fleet" and phases[2].attempts == 1
    assert phases[3].attempts == 1 and phases[4].attempts == 1
    with session_scope(fleet.ctx.sessions) as s:
        handoffs = s.scalars(select(OutboxMessage)
                             .where(OutboxMessage.dedup_key.like(f"after-render:{job_id}:%"))).all()
        assert len(handoffs) == 1 and handoffs[0].sent_at is not None  # phase 3 enqueued exactly once
        gpu_workers = s.scalars(select(WorkerRow).where(WorkerRow.worker_type == "gpu")).all()
        assert len(gpu_workers) == 2
        assert sum(w.counts.get("done", 0) for w in gpu_workers) >= len(clips)

    started = time.monotonic()
    for proc in fleet.procs:
        proc.send_signal(signal.SIGTERM)
    for proc in fleet.procs:
        assert proc.wait(15) == 0
    assert time.monotonic() - started < 10


def test_kill_9_cpu_worker_mid_phase_loses_nothing(fleet: Fleet, tiny_listing: Any) -> None:
    """A CPU worker killed with SIGKILL in the middle of phase 4: its message reappears after the visibility
    timeout, the job lease expires, and a second worker runs phase 4 again. No duplicate rows, no re-render."""
    job_id = fleet.create_job(tiny_listing)
    fleet.enqueue(job_id)
    victim = fleet.spawn("cpu", "victim", OUTPUT_X264_PRESET="veryslow")
    gpu = fleet.spawn("gpu", "gpu")
    wait_for("phase 4 to start", lambda: fleet.phases(job_id).get(4) is not None
             and fleet.phases(job_id)[4].status == "running", 120, fleet, ("victim", "gpu"))
    time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    assert fleet.job(job_id).lease_owner is not None  # the dead worker's lease is still on the row
    fleet.spawn("cpu", "rescuer")
    wait_for("the job to complete", completed(fleet, job_id), 120, fleet, ("rescuer", "gpu"))
    gpu.send_signal(signal.SIGTERM)

    assert_video(fleet, job_id)
    phases = fleet.phases(job_id)
    assert phases[4].attempts == 2 and phases[3].attempts == 1 and phases[1].attempts == 1
    assert row_counts(fleet, job_id) == {"photos": len(tiny_listing.photo_paths),
                                         "clips": len(tiny_listing.photo_paths), "timelines": 1, "phases": 4}
    assert all(c.render_attempts == 1 for c in fleet.clips(job_id).values())
    assert fleet.job(job_id).lease_owner is None


def test_sigterm_gpu_worker_mid_clip(fleet: Fleet, tiny_listing: Any) -> None:
    """SIGTERM while a GPU worker renders: it stops within 10 s with status 0, hands the clip back at once,
    and the job completes elsewhere without rendering any finished clip again."""
    job_id = fleet.create_job(tiny_listing, target_length=16.0)
    fleet.enqueue(job_id)
    cpu = fleet.spawn("cpu", "cpu")
    # A slow encoder makes "mid-clip" a wide window.
    victim = fleet.spawn("gpu", "victim", CLIP_X264_PRESET="veryslow", OUTPUT_RESOLUTION="1280x720")

    def rendering() -> bool:
        return any(c.status == "rendering" and (c.lease_owner or "").startswith("gpu-")
                   for c in fleet.clips(job_id).values())

    wait_for("a clip to be rendering", rendering, 120, fleet, ("cpu", "victim"))
    before = {c.id: (c.status, c.rendered_at) for c in fleet.clips(job_id).values()}
    in_progress = [cid for cid, (status, _) in before.items() if status == "rendering"]
    started = time.monotonic()
    victim.send_signal(signal.SIGTERM)
    assert victim.wait(12) == 0
    assert time.monotonic() - started < 10
    log = fleet.log("victim")
    assert "handed back" in log or "released" in log
    for cid in in_progress:
        clip = fleet.clips(job_id)[cid]
        assert clip.lease_owner is None and clip.status == "pending"

    fleet.spawn("gpu", "rescuer")
    wait_for("the job to complete", completed(fleet, job_id), 150, fleet, ("cpu", "rescuer"))
    cpu.send_signal(signal.SIGTERM)
    after = fleet.clips(job_id)
    for cid, (status, rendered_at) in before.items():
        if status == "rendered":  # finished before the SIGTERM: never rendered again
            assert after[cid].rendered_at == rendered_at and after[cid].render_attempts == 1
    for cid in in_progress:
        assert after[cid].render_attempts == 2 and after[cid].status == "rendered"
    assert_video(fleet, job_id)


def test_same_message_delivered_twice(fleet: Fleet, tiny_listing: Any, inproc: InProcessWorkers) -> None:
    """Rails sends the same message twice and two CPU workers take one each: the job runs once."""
    job_id = fleet.create_job(tiny_listing)
    fleet.enqueue(job_id)
    fleet.enqueue(job_id)
    inproc.start("cpu", 2)
    inproc.start("gpu", 1)
    wait_for("the job to complete", completed(fleet, job_id), 150)
    # Let the duplicate settle (it was deferred or found nothing to do).
    wait_for("the queues to drain", lambda: fleet.cpu.depth().visible + fleet.cpu.depth().in_flight
             + fleet.cpu.depth().delayed == 0, 60)
    phases = fleet.phases(job_id)
    assert all(phases[p].attempts == 1 for p in (1, 2, 3, 4)), {p: phases[p].attempts for p in phases}
    assert all(c.render_attempts == 1 for c in fleet.clips(job_id).values())
    assert row_counts(fleet, job_id)["timelines"] == 1

    # The same SQS message (same MessageId) redelivered with a start_phase: applied once, then resumed.
    message_id = fleet.enqueue(job_id, start_phase=3)
    wait_for("the re-run to complete", lambda: fleet.phases(job_id)[3].attempts == 2
             and fleet.job(job_id).status == "completed", 120)
    hctx = HandlerContext(fleet.ctx, "test-redelivery", inproc.workers[0].relay, threading.Event())
    again = ReceivedMessage(message_id=message_id, receipt_handle="x", receive_count=2,
                            body=json.dumps({"job_id": job_id, "action": "run", "start_phase": 3}))
    disposition = handle_cpu(hctx, InFlight(again))
    assert disposition.action == "ack"
    assert fleet.phases(job_id)[3].attempts == 2  # not invalidated a second time
    assert row_counts(fleet, job_id)["timelines"] == 2


def test_bad_messages_are_rejected_and_counted(fleet: Fleet, inproc: InProcessWorkers) -> None:
    for body in ("not json", json.dumps({"job_id": 1, "action": "explode"}), json.dumps({"job_id": 999_999}),
                 json.dumps({"job_id": "x"}), json.dumps({"action": "run"})):
        fleet.cpu.send(body)
    ctx = make_context(fleet.settings, fleet.ctx.storage)
    worker = Worker(ctx, "cpu", fleet.cpu)
    outcomes = []
    deadline = time.monotonic() + 30
    while len(outcomes) < 5 and time.monotonic() < deadline:
        d = worker.poll_once(wait_seconds=1)
        if d is not None:
            outcomes.append(d)
    assert [d.action for d in outcomes] == ["reject"] * 5
    reasons = " | ".join(d.reason for d in outcomes)
    assert "not JSON" in reasons and "unknown action 'explode'" in reasons and "does not exist" in reasons
    assert worker.record.counts["rejected"] == 5
    assert fleet.cpu.depth().visible == 0 and fleet.cpu.depth().in_flight == 0


def test_poison_message_ends_in_dlq_and_job_fails_with_reason(fleet: Fleet, tiny_listing: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A message whose processing crashes on every delivery: retried through visibility with backoff, then
    the redrive policy moves it to the DLQ, and the job is failed with the reason."""
    import app.orchestrator.core as core

    def exploding_phase(job_id: int, ctx: PhaseContext) -> Any:
        raise RuntimeError("a bug that crashes every time")

    monkeypatch.setattr(core, "phase_runner", lambda phase: exploding_phase)
    job_id = fleet.create_job(tiny_listing)
    fleet.enqueue(job_id)
    worker = Worker(make_context(fleet.settings, fleet.ctx.storage), "cpu", fleet.cpu)
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(seen) < fleet.settings.SQS_MAX_RECEIVES:
        d = worker.poll_once(wait_seconds=1)
        if d is not None:
            seen.append(d.action)
    assert seen == ["retry"] * fleet.settings.SQS_MAX_RECEIVES
    assert worker.record.counts["retried"] == fleet.settings.SQS_MAX_RECEIVES - 1
    assert worker.record.counts["failed"] == 1
    job = fleet.job(job_id)
    assert job.status == "failed"
    assert "RuntimeError" in (job.error or "") and "gave up after 3 deliveries" in (job.error or "")
    # The next receive moves it to the DLQ (moto applies the redrive policy on receive).
    assert worker.poll_once(wait_seconds=1) is None
    bodies = dlq_bodies(fleet, fleet.cpu_dlq_url)
    assert [b["job_id"] for b in bodies] == [job_id]


def test_dlq_drain_marks_jobs_failed(fleet: Fleet, tiny_listing: Any) -> None:
    """A message that reached the DLQ without a worker recording why (it killed its workers): `picaivid dlq
    drain` fails the job with an explanation and empties the DLQ."""
    from typer.testing import CliRunner

    from app.cli import app

    job_id = fleet.create_job(tiny_listing)
    SqsQueue(fleet.cpu.client, fleet.gpu_dlq_url).send(JobMessage(job_id=job_id, start_phase=2, clip_id=1).body())
    SqsQueue(fleet.cpu.client, fleet.cpu_dlq_url).send("garbage")
    env = fleet.env()
    from app.config import get_settings
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["dlq", "drain", "--json"], env=env)
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    drained = json.loads(result.stdout)["drained"]
    outcomes = sorted((d["queue"], d["outcome"]) for d in drained)
    assert outcomes == [("cpu", "malformed"), ("gpu", "job failed")]
    job = fleet.job(job_id)
    assert job.status == "failed" and "dead-letter queue" in (job.error or "")
    assert dlq_bodies(fleet, fleet.gpu_dlq_url) == []


def test_rerun_from_each_phase_on_the_fleet(fleet: Fleet, tiny_listing: Any, inproc: InProcessWorkers) -> None:
    """`picaivid run JOB --from-phase N` against the fleet re-runs N and later, and nothing earlier."""
    from typer.testing import CliRunner

    from app.cli import app
    from app.config import get_settings

    job_id = fleet.create_job(tiny_listing)
    fleet.enqueue(job_id)
    inproc.start("cpu", 1)
    inproc.start("gpu", 1)
    wait_for("the first run", completed(fleet, job_id), 150)
    for start_phase in (4, 3, 2, 1):
        before_phases = {p: r.attempts for p, r in fleet.phases(job_id).items()}
        before_clips = {c.id: c.render_attempts for c in fleet.clips(job_id).values()}
        before_versions = row_counts(fleet, job_id)["timelines"]

        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["run", str(job_id), "--from-phase", str(start_phase), "--fleet", "--json",
                                          "--timeout", "150"], env=fleet.env())
        get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "completed"

        after_phases = {p: r.attempts for p, r in fleet.phases(job_id).items()}
        for p in (1, 2, 3, 4):
            assert after_phases[p] == before_phases[p] + (1 if p >= start_phase else 0), (start_phase, p, after_phases)
        after_clips = {c.id: c.render_attempts for c in fleet.clips(job_id).values()}
        if start_phase == 2:
            assert all(after_clips[c] == before_clips[c] + 1 for c in before_clips)
        else:  # from 1: plans unchanged, renders reused; from 3 and 4: clips untouched
            assert after_clips == before_clips, start_phase
        versions = row_counts(fleet, job_id)["timelines"]
        assert versions == before_versions + (1 if start_phase <= 3 else 0)
    assert_video(fleet, job_id)


def test_spot_notice_stops_gpu_worker_and_defers_clip_to_interruption_time(fleet: Fleet, tiny_listing: Any) -> None:
    """An IMDSv2 spot/instance-action notice (from a local fake metadata service): the GPU worker stops
    within 10 s with status 0, and the clip's message stays hidden until the announced interruption."""
    from datetime import UTC, datetime, timedelta

    from tests.fakes.imds import FakeImds

    job_id = fleet.create_job(tiny_listing, target_length=16.0)
    fleet.enqueue(job_id)
    cpu = fleet.spawn("cpu", "cpu")
    with FakeImds() as imds:
        victim = fleet.spawn("gpu", "victim", CLIP_X264_PRESET="veryslow", OUTPUT_RESOLUTION="1280x720",
                             SPOT_TERMINATION_ENDPOINT=imds.url, SPOT_POLL_SECONDS=0.5)
        wait_for("a clip to be rendering", lambda: any(c.status == "rendering" for c in fleet.clips(job_id).values()),
                 120, fleet, ("cpu", "victim"))
        started = time.monotonic()
        imds.schedule("terminate", at=datetime.now(UTC) + timedelta(seconds=20))
        assert victim.wait(12) == 0
        assert time.monotonic() - started < 10
        assert imds.count("token") >= 1 and imds.count("action_200") >= 1
    assert "spot terminate" in fleet.log("victim")
    assert all(c.lease_owner is None for c in fleet.clips(job_id).values())
    # Handed back "at the announced interruption time": not visible yet.
    depth = fleet.gpu.depth()
    assert depth.in_flight >= 1
    cpu.send_signal(signal.SIGTERM)
    assert cpu.wait(12) == 0
