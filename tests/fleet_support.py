"""Shared by the fleet tests: a fleet on real PostgreSQL and moto_server (SQS + S3) with short timings,
worker processes, in-process workers, and bounded waits (`wait_for`), so a broken fleet fails a test
instead of hanging the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.db.models import Clip, Job, JobPhase, Photo, Timeline
from app.db.session import session_scope
from app.media.ffmpeg import probe
from app.phases.base import PhaseContext
from app.queue.sqs import SqsQueue, provision_queue, sqs_client
from app.services.jobs import PhotoInput, create_job
from app.storage import S3Storage
from app.worker.loop import Worker
from tests.conftest import _truncate, make_context, make_settings

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_listing(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from app.samples import make_sample_listing

    out = tmp_path_factory.mktemp("fleet-listing")
    return make_sample_listing(
        out,
        width=480,
        height=320,
        music_seconds=18.0,
        bpm=120.0,
        seed=5,
        rooms=["exterior", "living_room", "kitchen", "bedroom_a"],
    )


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
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.worker", "--type", worker_type],
            cwd=ROOT,
            env=self.env(**overrides),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def create_job(self, listing: Any, **kwargs: Any) -> int:
        photos = [PhotoInput(path=p) for p in listing.photo_paths]
        return create_job(
            self.ctx,
            listing_id=f"fleet-{uuid.uuid4().hex[:6]}",
            photos=photos,
            music=listing.music_path,
            target_length=kwargs.pop("target_length", 12.0),
            **kwargs,
        )

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


def wait_for(
    what: str, predicate: Callable[[], bool], timeout: float, fleet: Fleet | None = None, logs: tuple[str, ...] = ()
) -> None:
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
        tmp_path,
        postgres_url,
        S3_BUCKET=s3_bucket,
        AWS_ENDPOINT_URL=aws_endpoint,
        AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        SQS_VISIBILITY_TIMEOUT=6,
        SQS_WAIT_SECONDS=1,
        SQS_MAX_RECEIVES=3,
        WORKER_HEARTBEAT_SECONDS=1.0,
        JOB_LEASE_SECONDS=5,
        CLIP_LEASE_SECONDS=5,
        RETRY_BACKOFF_BASE_SECONDS=1.0,
        RETRY_BACKOFF_MAX_SECONDS=2.0,
        SHUTDOWN_GRACE_SECONDS=6.0,
        SPOT_TERMINATION_ENDPOINT="",
        SPOT_POLL_SECONDS=0.3,
    )
    client = sqs_client(settings)
    cpu_url, cpu_dlq = provision_queue(
        client,
        f"{prefix}-cpu",
        max_receives=settings.SQS_MAX_RECEIVES,
        visibility_timeout=settings.SQS_VISIBILITY_TIMEOUT,
    )
    gpu_url, gpu_dlq = provision_queue(
        client,
        f"{prefix}-gpu",
        max_receives=settings.SQS_MAX_RECEIVES,
        visibility_timeout=settings.SQS_VISIBILITY_TIMEOUT,
    )
    settings = settings.model_copy(update={"SQS_QUEUE_URL": cpu_url, "SQS_GPU_QUEUE_URL": gpu_url})
    ctx = make_context(settings, S3Storage(s3_bucket, endpoint_url=aws_endpoint))
    fleet = Fleet(settings, ctx, SqsQueue(client, cpu_url), SqsQueue(client, gpu_url), cpu_dlq, gpu_dlq, tmp_path, [])
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
        timeline = s.scalars(
            select(Timeline).where(Timeline.job_id == job_id).order_by(Timeline.version.desc())
        ).first()
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
