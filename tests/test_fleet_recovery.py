"""Fleet recovery: a worker killed with SIGKILL mid-phase, a GPU worker stopped by SIGTERM mid-clip, and
one stopped by an EC2 Spot interruption notice (real worker processes, PostgreSQL, moto_server)."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.fleet_support import (
    Fleet,
    assert_video,
    completed,
    fleet,
    inproc,
    row_counts,
    tiny_listing,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["fleet", "inproc", "tiny_listing"]  # fixtures used by name


def test_kill_9_cpu_worker_mid_phase_loses_nothing(fleet: Fleet, tiny_listing: Any) -> None:
    """A CPU worker killed with SIGKILL in the middle of phase 4: its message reappears after the visibility
    timeout, the job lease expires, and a second worker runs phase 4 again. No duplicate rows, no re-render."""
    job_id = fleet.create_job(tiny_listing)
    fleet.enqueue(job_id)
    victim = fleet.spawn("cpu", "victim", OUTPUT_X264_PRESET="veryslow")
    gpu = fleet.spawn("gpu", "gpu")
    wait_for(
        "phase 4 to start",
        lambda: fleet.phases(job_id).get(4) is not None and fleet.phases(job_id)[4].status == "running",
        120,
        fleet,
        ("victim", "gpu"),
    )
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
    assert row_counts(fleet, job_id) == {
        "photos": len(tiny_listing.photo_paths),
        "clips": len(tiny_listing.photo_paths),
        "timelines": 1,
        "phases": 4,
    }
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
        return any(
            c.status == "rendering" and (c.lease_owner or "").startswith("gpu-") for c in fleet.clips(job_id).values()
        )

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


def test_spot_notice_stops_gpu_worker_and_defers_clip_to_interruption_time(fleet: Fleet, tiny_listing: Any) -> None:
    """An IMDSv2 spot/instance-action notice (from a local fake metadata service): the GPU worker stops
    within 10 s with status 0, and the clip's message stays hidden until the announced interruption."""
    from datetime import UTC, datetime, timedelta

    from tests.fakes.imds import FakeImds

    job_id = fleet.create_job(tiny_listing, target_length=16.0)
    fleet.enqueue(job_id)
    cpu = fleet.spawn("cpu", "cpu")
    with FakeImds() as imds:
        victim = fleet.spawn(
            "gpu",
            "victim",
            CLIP_X264_PRESET="veryslow",
            OUTPUT_RESOLUTION="1280x720",
            SPOT_TERMINATION_ENDPOINT=imds.url,
            SPOT_POLL_SECONDS=0.5,
        )
        wait_for(
            "a clip to be rendering",
            lambda: any(c.status == "rendering" for c in fleet.clips(job_id).values()),
            120,
            fleet,
            ("cpu", "victim"),
        )
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


def test_sigterm_cpu_worker_mid_phase_hands_back_after_the_grace_period(fleet: Fleet, tiny_listing: Any) -> None:
    """A CPU phase cannot stop mid-encode: after SHUTDOWN_GRACE_SECONDS the worker releases the job lease
    and the message itself, kills its ffmpeg child and exits 0; the next worker re-runs that phase at once
    (no lease to wait out)."""
    job_id = fleet.create_job(tiny_listing)
    fleet.enqueue(job_id)
    victim = fleet.spawn("cpu", "victim", OUTPUT_X264_PRESET="veryslow", SHUTDOWN_GRACE_SECONDS=2)
    gpu = fleet.spawn("gpu", "gpu")
    wait_for(
        "phase 4 to start",
        lambda: fleet.phases(job_id).get(4) is not None and fleet.phases(job_id)[4].status == "running",
        120,
        fleet,
        ("victim", "gpu"),
    )
    started = time.monotonic()
    victim.send_signal(signal.SIGTERM)
    assert victim.wait(12) == 0
    assert time.monotonic() - started < 10
    assert "handing it back" in fleet.log("victim")
    job = fleet.job(job_id)
    assert job.lease_owner is None  # released, not left to expire
    assert fleet.cpu.depth().visible + fleet.cpu.depth().in_flight == 1  # the message is back on the queue
    fleet.spawn("cpu", "rescuer")
    wait_for("the job to complete", completed(fleet, job_id), 120, fleet, ("rescuer", "gpu"))
    gpu.send_signal(signal.SIGTERM)
    assert fleet.phases(job_id)[4].attempts == 2
    assert all(c.render_attempts == 1 for c in fleet.clips(job_id).values())
    assert row_counts(fleet, job_id)["timelines"] == 1
    assert_video(fleet, job_id)
