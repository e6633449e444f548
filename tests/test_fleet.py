"""Fleet mode end to end: the API, a CPU worker and two GPU worker processes; duplicates, bad and poison
messages, the DLQ, and re-runs from every phase against the fleet (real PostgreSQL + moto_server)."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from typing import Any

import boto3
import pytest
from sqlalchemy import select

from app.callbacks import SIGNATURE_HEADER, verify_signature
from app.db.models import OutboxMessage
from app.db.models import Worker as WorkerRow
from app.db.session import session_scope
from app.phases.base import PhaseContext
from app.queue.messages import JobMessage
from app.queue.sqs import ReceivedMessage, SqsQueue
from app.worker.handlers import HandlerContext, InFlight, handle_cpu
from app.worker.loop import Worker
from tests.conftest import make_context
from tests.fakes.backend import serve_backend
from tests.fleet_support import (
    Fleet,
    InProcessWorkers,
    assert_video,
    completed,
    dlq_bodies,
    fleet,
    inproc,
    row_counts,
    tiny_listing,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["fleet", "inproc", "tiny_listing"]  # fixtures used by name


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
        response = api.post(
            "/internal/jobs",
            headers={"X-API-Key": "secret"},
            json={
                "listing_id": "fleet-e2e",
                "photos": [{"uri": u} for u in uris[:-1]],
                "music_uri": uris[-1],
                "target_length": 12,
                "enqueue": True,
            },
        )
        assert response.status_code == 201, response.text
        job_id = response.json()["job_id"]

        with serve_backend() as backend:
            callbacks = {"BACKEND_URL": backend.url, "API_KEY": "secret", "CALLBACK_SECRET": "cb-secret"}
            fleet.spawn("cpu", "cpu1", **callbacks)
            fleet.spawn("gpu", "gpu1", **callbacks)
            fleet.spawn("gpu", "gpu2", **callbacks)
            wait_for("the job to complete", completed(fleet, job_id), 180, fleet, ("cpu1", "gpu1", "gpu2"))
            wait_for(
                "the job_completed callback", lambda: any(b["event"] == "job_completed" for b in backend.bodies()), 15
            )
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
    assert any(e["event"] == "progress" and e["phase"] == 2 and e["done"] == e["total"] == len(clips) for e in events)
    # Signed with CALLBACK_SECRET; the API key appears nowhere in what the backend received.
    assert all(verify_signature("cb-secret", r.header(SIGNATURE_HEADER), r.raw) for r in requests)
    assert not any("secret" in v for r in requests for v in r.headers.values()) and b"secret" not in b"".join(
        r.raw for r in requests
    )
    keys = [r.headers.get("X-Idempotency-Key") for r in requests]
    assert all(keys) and len(set(keys)) == len(keys)
    phases = fleet.phases(job_id)
    assert [phases[p].status for p in (1, 2, 3, 4)] == ["completed"] * 4
    assert phases[2].details["mode"] == "fleet" and phases[2].attempts == 1
    assert phases[3].attempts == 1 and phases[4].attempts == 1
    with session_scope(fleet.ctx.sessions) as s:
        handoffs = s.scalars(
            select(OutboxMessage).where(OutboxMessage.dedup_key.like(f"after-render:{job_id}:%"))
        ).all()
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


def test_same_message_delivered_twice(fleet: Fleet, tiny_listing: Any, inproc: InProcessWorkers) -> None:
    """Rails sends the same message twice and two CPU workers take one each: the job runs once."""
    job_id = fleet.create_job(tiny_listing)
    fleet.enqueue(job_id)
    fleet.enqueue(job_id)
    inproc.start("cpu", 2)
    inproc.start("gpu", 1)
    wait_for("the job to complete", completed(fleet, job_id), 150)
    # Let the duplicate settle (it was deferred or found nothing to do).
    wait_for(
        "the queues to drain",
        lambda: fleet.cpu.depth().visible + fleet.cpu.depth().in_flight + fleet.cpu.depth().delayed == 0,
        60,
    )
    phases = fleet.phases(job_id)
    assert all(phases[p].attempts == 1 for p in (1, 2, 3, 4)), {p: phases[p].attempts for p in phases}
    assert all(c.render_attempts == 1 for c in fleet.clips(job_id).values())
    assert row_counts(fleet, job_id)["timelines"] == 1

    # The same SQS message (same MessageId) redelivered with a start_phase: applied once, then resumed.
    message_id = fleet.enqueue(job_id, start_phase=3)
    wait_for(
        "the re-run to complete",
        lambda: fleet.phases(job_id)[3].attempts == 2 and fleet.job(job_id).status == "completed",
        120,
    )
    hctx = HandlerContext(fleet.ctx, "test-redelivery", inproc.workers[0].relay, threading.Event())
    again = ReceivedMessage(
        message_id=message_id,
        receipt_handle="x",
        receive_count=2,
        body=json.dumps({"job_id": job_id, "action": "run", "start_phase": 3}),
    )
    disposition = handle_cpu(hctx, InFlight(again))
    assert disposition.action == "ack"
    assert fleet.phases(job_id)[3].attempts == 2  # not invalidated a second time
    assert row_counts(fleet, job_id)["timelines"] == 2


def test_bad_messages_are_rejected_and_counted(fleet: Fleet, inproc: InProcessWorkers) -> None:
    for body in (
        "not json",
        json.dumps({"job_id": 1, "action": "explode"}),
        json.dumps({"job_id": 999_999}),
        json.dumps({"job_id": "x"}),
        json.dumps({"action": "run"}),
    ):
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


def test_poison_message_ends_in_dlq_and_job_fails_with_reason(
    fleet: Fleet, tiny_listing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
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
        result = CliRunner().invoke(
            app,
            ["run", str(job_id), "--from-phase", str(start_phase), "--fleet", "--json", "--timeout", "150"],
            env=fleet.env(),
        )
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
