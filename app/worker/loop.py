"""The worker loop: receive one message, handle it under a heartbeat, settle it; stop cleanly on SIGTERM or
a Spot interruption notice.

Retries are honest and explicit (`settle`):
* ACK / REJECT delete the message (REJECT is counted and logged with its reason);
* RETRY makes it visible again after `RETRY_BACKOFF_BASE_SECONDS * 2^(n-1)` (capped). On its last
  delivery before the redrive policy moves it to the dead-letter queue (`ApproximateReceiveCount >=
  SQS_MAX_RECEIVES`) the job is marked failed with the reason, and the message goes on to the DLQ;
* DEFER re-sends a copy with a delay and deletes this one (someone else holds the job or clip; a fresh
  copy keeps the receive count for real failures);
* RELEASE makes it visible again at once, or at the announced Spot interruption time.

Shutdown: the first SIGTERM/SIGINT or Spot notice stops taking messages and cancels the in-flight work
(renders stop at their next frame and hand their clip back). If the work has not wound down within
SHUTDOWN_GRACE_SECONDS (a long CPU phase cannot stop mid-encode), the loop hands back the lease and the
message itself, kills its ffmpeg children and exits 0: phases are idempotent, so the next worker simply
runs that phase again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

from app.callbacks import CallbackSink
from app.db.models import Job
from app.db.session import session_scope
from app.logs import bind
from app.orchestrator import fleet
from app.phases.base import PhaseContext
from app.progress import ProgressEvent, ProgressSink, safe_emit
from app.queue.outbox import OutboxRelay
from app.queue.sqs import ReceivedMessage, SqsQueue
from app.services.dispatch import fleet_publishers
from app.worker.handlers import Action, Disposition, HandlerContext, InFlight, give_up, handle_cpu, handle_gpu
from app.worker.heartbeat import Heartbeat
from app.worker.registry import WorkerRecord, new_worker_id
from app.worker.spot import SpotNotice, SpotNoticePoller

log = logging.getLogger(__name__)

WorkerType = Literal["cpu", "gpu"]
#: How often an idle worker sends staged outbox rows another process left behind.
OUTBOX_SWEEP_SECONDS = 10.0


@dataclass
class WorkerStats:
    received: int = 0
    exit_reason: str = ""


def backoff_seconds(receive_count: int, base: float, cap: float) -> float:
    return float(min(cap, base * 2 ** max(0, receive_count - 1)))


class Worker:
    """One process's consumer of one queue. `run()` until stopped; tests drive `poll_once()`."""

    def __init__(
        self,
        ctx: PhaseContext,
        worker_type: WorkerType,
        queue: SqsQueue,
        *,
        relay: OutboxRelay | None = None,
        worker_id: str | None = None,
        callbacks: CallbackSink | None = None,
    ) -> None:
        self.settings = ctx.settings
        self.worker_type = worker_type
        self.queue = queue
        self.worker_id = worker_id or new_worker_id(worker_type)
        self.callbacks = callbacks
        if callbacks is not None:
            ctx.progress_sink = _tee(ctx.progress_sink, callbacks)
        ctx.worker_id = self.worker_id
        self.ctx = ctx
        self.relay = relay or OutboxRelay(ctx.sessions, fleet_publishers(ctx.settings, queue.client))
        self.stop_requested = threading.Event()
        self.cancel = threading.Event()
        self.stop_reason = ""
        self.stop_at = 0.0
        self.release_delay = 0.0
        self.record = WorkerRecord(ctx, self.worker_id, worker_type)
        self.stats = WorkerStats()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"picaivid-{worker_type}")
        self._inflight: InFlight | None = None
        self._last_sweep = 0.0

    # -- stopping ------------------------------------------------------------------------------

    def request_stop(self, reason: str, *, release_delay: float = 0.0) -> None:
        """Stop taking messages and wind down the current one (signal-handler safe: only sets flags)."""
        if self.stop_requested.is_set():
            return
        self.stop_reason = reason
        self.release_delay = max(0.0, release_delay)
        self.stop_at = time.monotonic()
        self.stop_requested.set()
        self.cancel.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only flags here (a handler interrupts arbitrary code); the loop logs the stop when it winds down.
        self.request_stop(signal.Signals(signum).name)

    def _on_spot_notice(self, notice: SpotNotice) -> None:
        log.warning("spot interruption notice: %s at %s", notice.action, notice.time)
        self.request_stop(f"spot {notice.action}", release_delay=notice.seconds_left())

    # -- the loop ------------------------------------------------------------------------------

    def run(self, *, install_signals: bool = True, max_messages: int | None = None) -> int:
        """Consume until stopped. Returns the process exit status (0 on a clean stop)."""
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        poller = SpotNoticePoller(
            self.settings.SPOT_TERMINATION_ENDPOINT, self.settings.SPOT_POLL_SECONDS, self._on_spot_notice
        )
        poller.start()
        self.record.save()
        log.info("worker %s consuming %s", self.worker_id, self.queue.name)
        try:
            while not self.stop_requested.is_set():
                self.poll_once()
                if max_messages is not None and self.stats.received >= max_messages:
                    break
        finally:
            poller.stop()
            self._shutdown()
        if self.stop_requested.is_set():
            log.info(
                "worker %s stopped (%s) %.2f s after the stop request",
                self.worker_id,
                self.stop_reason,
                time.monotonic() - self.stop_at,
            )
        else:
            log.info("worker %s stopped (done)", self.worker_id)
        return 0

    def poll_once(self, wait_seconds: int | None = None) -> Disposition | None:
        """Receive at most one message and handle it. Returns how it was settled (None: no message)."""
        now = time.monotonic()
        if now - self._last_sweep > OUTBOX_SWEEP_SECONDS:
            self._last_sweep = now
            self._sweep_outbox()
        self.record.state = "idle"
        wait = min(self.settings.SQS_WAIT_SECONDS, 5) if wait_seconds is None else wait_seconds
        messages = self.queue.receive(
            max_messages=1, wait_seconds=wait, visibility_timeout=self.settings.SQS_VISIBILITY_TIMEOUT
        )
        if not messages:
            return None
        message = messages[0]
        self.stats.received += 1
        if self.stop_requested.is_set():  # arrived during the last long poll: give it straight back
            self.queue.change_visibility(message, self.release_delay)
            return Disposition(Action.RELEASE, "received while stopping")
        return self.process(message)

    def process(self, message: ReceivedMessage) -> Disposition:
        inflight = InFlight(message)
        self._inflight = inflight
        self.record.state = "busy"
        self.record.save()
        heartbeat = Heartbeat(self.settings.WORKER_HEARTBEAT_SECONDS, lambda: self._beat(inflight))
        heartbeat.start()
        future: Future[Disposition] = self._pool.submit(self._handle, inflight)
        try:
            disposition = self._supervise(future, inflight)
        finally:
            heartbeat.stop()
        self._settle(message, disposition)
        self._inflight = None
        self.record.job_id = self.record.clip_id = None
        return disposition

    def _handle(self, inflight: InFlight) -> Disposition:
        with bind(**_message_ids(inflight.message.body)):
            return self._dispatch(inflight)

    def _dispatch(self, inflight: InFlight) -> Disposition:
        hctx = HandlerContext(self.ctx, self.worker_id, self.relay, self.cancel, lambda: self.release_delay)
        try:
            if self.worker_type == "gpu":
                return handle_gpu(hctx, inflight)
            return handle_cpu(hctx, inflight)
        except Exception as exc:  # infrastructure trouble outside a phase (database down, ...)
            log.exception("handling message %s failed", inflight.message.message_id)
            return Disposition(Action.RETRY, f"{type(exc).__name__}: {exc}"[:300], job_id=inflight.job_id)

    def _supervise(self, future: Future[Disposition], inflight: InFlight) -> Disposition:
        while True:
            try:
                return future.result(timeout=0.2)
            except FutureTimeout:
                pass
            self.record.job_id, self.record.clip_id = inflight.job_id, inflight.clip_id
            if self.stop_requested.is_set() and time.monotonic() - self.stop_at > self.settings.SHUTDOWN_GRACE_SECONDS:
                self._abandon(inflight)

    def _beat(self, inflight: InFlight) -> None:
        settings = self.settings
        self.queue.change_visibility(inflight.message, settings.SQS_VISIBILITY_TIMEOUT)
        with inflight.lock:
            job_id, clip_id, holds = inflight.job_id, inflight.clip_id, inflight.holds_job_lease
        if (
            holds
            and job_id is not None
            and not fleet.renew_job_lease(self.ctx, job_id, self.worker_id, settings.JOB_LEASE_SECONDS)
        ):
            log.warning("lost the lease on job %s", job_id)
        if clip_id is not None and not fleet.renew_clip_lease(
            self.ctx, clip_id, self.worker_id, settings.CLIP_LEASE_SECONDS
        ):
            log.warning("lost the lease on clip %s", clip_id)
        self.record.job_id, self.record.clip_id = job_id, clip_id
        self.record.save()

    # -- settling ------------------------------------------------------------------------------

    def _settle(self, message: ReceivedMessage, d: Disposition) -> None:
        settings = self.settings
        where = f"message {message.message_id} (job {d.job_id}, delivery {message.receive_count})"
        if d.action == Action.ACK:
            self.queue.delete(message)
            log.info("%s: done: %s", where, d.reason)
            self.record.count("done")
        elif d.action == Action.REJECT:
            self.queue.delete(message)
            log.warning("%s: rejected and deleted: %s", where, d.reason)
            self.record.count("rejected")
        elif d.action == Action.DEFER:
            self.queue.send(message.body, delay_seconds=int(min(900.0, max(1.0, d.delay))))
            self.queue.delete(message)
            log.info("%s: deferred %.0f s: %s", where, d.delay, d.reason)
            self.record.count("deferred")
        elif d.action == Action.RELEASE:
            self.queue.change_visibility(message, d.delay)
            log.info("%s: released (visible in %.0f s): %s", where, d.delay, d.reason)
            self.record.count("released")
        else:  # RETRY
            if message.receive_count >= settings.SQS_MAX_RECEIVES:
                if d.job_id is not None:
                    give_up(
                        HandlerContext(self.ctx, self.worker_id, self.relay, self.cancel),
                        d.job_id,
                        d.reason,
                        message.receive_count,
                    )
                self.queue.change_visibility(message, 0)  # the next receive moves it to the DLQ
                log.error("%s: failed for the last time, on to the dead-letter queue: %s", where, d.reason)
                self.record.count("failed")
            else:
                delay = backoff_seconds(
                    message.receive_count, settings.RETRY_BACKOFF_BASE_SECONDS, settings.RETRY_BACKOFF_MAX_SECONDS
                )
                self.queue.change_visibility(message, delay)
                log.warning("%s: will retry in %.0f s: %s", where, delay, d.reason)
                self.record.count("retried")

    # -- shutdown ------------------------------------------------------------------------------

    def _abandon(self, inflight: InFlight) -> None:
        """The in-flight work did not stop within the grace period: hand everything back ourselves and
        leave now. Runs on the main thread while the handler thread is still busy."""
        log.warning(
            "work on message %s did not stop within %.0f s; handing it back and exiting",
            inflight.message.message_id,
            self.settings.SHUTDOWN_GRACE_SECONDS,
        )
        with inflight.lock:
            job_id, clip_id, holds = inflight.job_id, inflight.clip_id, inflight.holds_job_lease
        try:
            if holds and job_id is not None:
                fleet.release_job_lease(self.ctx, job_id, self.worker_id)
            if clip_id is not None:
                fleet.release_clip_lease(self.ctx, clip_id, self.worker_id)
            self.queue.change_visibility(inflight.message, self.release_delay)
        except Exception:  # the leases expire and the message reappears on their own
            log.warning("could not hand back message %s cleanly", inflight.message.message_id, exc_info=True)
        self.record.state = "stopped"
        self.record.count("released")
        kill_children()
        logging.shutdown()
        os._exit(0)

    def _shutdown(self) -> None:
        self.record.state = "stopped"
        self.record.job_id = self.record.clip_id = None
        self.record.save()
        if self.callbacks is not None:
            self.callbacks.close(timeout=2.0)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _sweep_outbox(self) -> None:
        try:
            self.relay.flush()
        except Exception:
            log.warning("outbox sweep failed", exc_info=True)


def kill_children() -> None:
    """SIGKILL this process's child processes (ffmpeg encoders) before a forced exit (Linux /proc)."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:
            with contextlib.suppress(OSError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


def _tee(first: ProgressSink, second: ProgressSink) -> ProgressSink:
    def sink(event: ProgressEvent) -> None:
        safe_emit(first, event)
        safe_emit(second, event)

    return sink


def callback_url_lookup(ctx: PhaseContext) -> Callable[[int], str | None]:
    """Each job's own callback URL (it wins over BACKEND_URL)."""

    def lookup(job_id: int) -> str | None:
        with session_scope(ctx.sessions) as s:
            job = s.get(Job, job_id)
            return job.callback_url if job is not None else None

    return lookup


def _message_ids(body: str) -> dict[str, int | None]:
    """job_id / clip_id of a message, for the log context; a body the handler will reject gives none."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k in ("job_id", "clip_id") if isinstance(v := data.get(k), int) and not isinstance(v, bool)}
