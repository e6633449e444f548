"""A job whose process died is never stuck: in-process runs hold a lease like fleet workers do.

Before: kill -9 the embedded API mid-render and restart it, and the job stayed "running" for ever; every
/run and edit answered 409. Now the run's lease names its process, a restarted API resumes the job at
once, and an expired (or dead) lease means anyone may resume it. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.db.models import Job, JobStatus, utcnow
from app.db.session import session_scope
from app.errors import JobBusyError
from app.orchestrator import run_job
from app.orchestrator.leases import inline_owner, job_busy_reason, owner_is_dead
from app.phases.base import PhaseContext
from app.samples import SampleListing, make_sample_listing
from tests.conftest import make_context, make_settings

REPO = Path(__file__).resolve().parents[1]
API_KEY = "interrupt-key"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _dead_inline_owner() -> str:
    return f"inline-{socket.gethostname()[:40]}-{_dead_pid()}-abc123"


def _new_job(ctx: PhaseContext, **values: Any) -> int:
    with session_scope(ctx.sessions) as s:
        job = Job(listing_id="interrupted", **values)
        s.add(job)
        s.flush()
        return job.id


# ---------------------------------------------------------------------------------------------
# the busy rule
# ---------------------------------------------------------------------------------------------


def test_owner_liveness() -> None:
    assert owner_is_dead(_dead_inline_owner())
    assert not owner_is_dead(inline_owner())  # this process
    assert not owner_is_dead(f"inline-{socket.gethostname()[:40]}-{os.getppid()}-abc123")  # alive
    assert not owner_is_dead(f"inline-another-host-{_dead_pid()}-abc123")  # cannot tell: wait for expiry
    assert not owner_is_dead("cpu-host-123-abcdef")  # fleet workers: their lease expires
    assert not owner_is_dead("inline-garbage") and not owner_is_dead(None)


def test_running_without_a_live_lease_is_resumable_only_in_embedded_mode(ctx: PhaseContext) -> None:
    future = utcnow() + timedelta(minutes=5)
    with session_scope(ctx.sessions) as s:
        orphan = Job(listing_id="x", status=JobStatus.RUNNING, current_phase=2)
        dead = Job(listing_id="x", status=JobStatus.RUNNING, lease_owner=_dead_inline_owner(), lease_expires_at=future)
        live = Job(listing_id="x", status=JobStatus.RUNNING, lease_owner=inline_owner(), lease_expires_at=future)
        lapsed = Job(listing_id="x", status=JobStatus.RUNNING, lease_owner="cpu-h-1-a", lease_expires_at=utcnow())
        s.add_all([orphan, dead, live, lapsed])
        s.flush()
        assert job_busy_reason(orphan, fleet=False) is None
        assert job_busy_reason(dead, fleet=False) is None  # dead at once, not after 5 minutes
        assert job_busy_reason(lapsed, fleet=False) is None
        assert "being worked on by inline-" in (job_busy_reason(live, fleet=False) or "")
        # Fleet: phase 2 renders on GPU workers after the CPU worker released the job lease.
        assert "is running (phase 2: render)" in (job_busy_reason(orphan, fleet=True) or "")


def test_run_job_refuses_a_live_lease_and_takes_over_a_dead_one(ctx: PhaseContext) -> None:
    future = utcnow() + timedelta(minutes=5)
    busy = _new_job(ctx, status=JobStatus.RUNNING, lease_owner="cpu-other-host-7-abcdef", lease_expires_at=future)
    with pytest.raises(JobBusyError, match="being worked on by cpu-other-host-7-abcdef"):
        run_job(ctx, busy, phases=())
    with session_scope(ctx.sessions) as s:
        assert s.get(Job, busy).lease_owner == "cpu-other-host-7-abcdef"  # type: ignore[union-attr]

    dead = _new_job(ctx, status=JobStatus.RUNNING, lease_owner=_dead_inline_owner(), lease_expires_at=future)
    outcome = run_job(ctx, dead, phases=())
    assert outcome.error is None
    with session_scope(ctx.sessions) as s:
        row = s.get(Job, dead)
        assert row is not None and row.lease_owner is None  # taken over, then released at the end


# ---------------------------------------------------------------------------------------------
# the real thing: kill -9 the embedded API mid-render, restart it
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> SampleListing:
    return make_sample_listing(
        tmp_path_factory.mktemp("interrupt-listing"),
        width=640,
        height=427,
        music_seconds=20.0,
        bpm=112.0,
        seed=5,
        rooms=["exterior", "kitchen", "living_room"],
        workers=1,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Api:
    """The embedded API as its own process (uvicorn), so it can really be killed."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.port = env, log, _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers={"X-API-Key": API_KEY})

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "app.api.main:app", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError("the API did not start: " + self.log.read_text()[-3000:])

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def job(self, job_id: int) -> dict[str, Any]:
        response = self.client.get(f"/internal/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_for(self, job_id: int, done: Any, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if done(job):
                return job
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.25)
        raise AssertionError(f"job {job_id} never got there: {self.job(job_id)}")


@pytest.fixture
def embedded_api(tmp_path: Path, database_url: str) -> Iterator[_Api]:
    settings = make_settings(tmp_path, database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQS_", "S3_", "AWS_ENDPOINT"))}
    env.update(
        DATABASE_URL=settings.DATABASE_URL,
        LOCAL_STORAGE_PATH=str(settings.LOCAL_STORAGE_PATH),
        WORK_DIR=str(settings.WORK_DIR),
        OUTPUT_RESOLUTION=settings.OUTPUT_RESOLUTION,
        OUTPUT_X264_PRESET="veryfast",
        CLIP_X264_PRESET="ultrafast",
        API_KEY=API_KEY,
        S3_BUCKET="",
    )
    api = _Api(env, tmp_path / "api.log")
    try:
        yield api
    finally:
        api.stop()
        api.client.close()


def _phase(job: dict[str, Any], n: int) -> dict[str, Any]:
    return next(p for p in job["phases"] if p["phase"] == n)


@pytest.mark.slow
def test_api_killed_mid_render_resumes_on_restart(embedded_api: _Api, listing: SampleListing) -> None:
    root = Path(embedded_api.env["LOCAL_STORAGE_PATH"])
    (root / "uploads").mkdir(parents=True, exist_ok=True)
    photos = []
    for i, src in enumerate(listing.photo_paths):
        shutil.copyfile(src, root / "uploads" / f"{i:02d}.jpg")
        photos.append({"uri": f"uploads/{i:02d}.jpg"})
    shutil.copyfile(listing.music_path, root / "uploads" / "music.wav")
    embedded_api.start()
    body = {"listing_id": "kill-9", "photos": photos, "music_uri": "uploads/music.wav", "target_length": 12}
    response = embedded_api.client.post("/internal/jobs", json={**body, "enqueue": True})
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]

    # Mid-render: phase 1 done, phase 2 running, some clips still to go.
    embedded_api.wait_for(job_id, lambda j: _phase(j, 2)["status"] == "running")
    embedded_api.kill9()

    embedded_api.start()  # same database: it must resume the job by itself, not answer 409 for ever
    job = embedded_api.wait_for(job_id, lambda j: j["status"] in ("completed", "failed"), timeout=150)
    assert job["status"] == "completed", job["error"]
    assert _phase(job, 1)["attempts"] == 1, "phase 1 was redone"
    assert _phase(job, 2)["attempts"] == 2 and all(c["status"] == "rendered" for c in job["clips"])
    assert job["artifacts"]["video"]

    # And it is an ordinary job again: a re-run is accepted (not 409) and completes.
    response = embedded_api.client.post(f"/internal/jobs/{job_id}/run", json={"start_phase": 4})
    assert response.status_code == 202, response.text
    job = embedded_api.wait_for(job_id, lambda j: _phase(j, 4)["attempts"] == 2 and j["status"] == "completed")


def test_a_restarted_api_resumes_a_job_whose_lease_lapsed(
    embedded_api: _Api, listing: SampleListing, tmp_path: Path
) -> None:
    """A job left running by a process on another host (its lease expired): resumed at start-up."""
    settings = make_settings(tmp_path, embedded_api.env["DATABASE_URL"])
    ctx = make_context(settings)
    job_id = _new_job(
        ctx, status=JobStatus.RUNNING, current_phase=1, lease_owner="inline-elsewhere-1-abc", lease_expires_at=utcnow()
    )
    embedded_api.start()
    job = embedded_api.wait_for(job_id, lambda j: j["status"] == "failed", timeout=60)
    # It has no photos, so phase 1 fails with the reason: the point is that it ran instead of staying stuck.
    assert "phase 1 (analyze)" in job["error"]
