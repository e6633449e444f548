"""Prometheus metrics for the fleet, read at scrape time from Postgres and SQS (no in-process counters:
the API may run as several replicas and the workers as many processes, and the database and the queues
are the shared truth).

Besides dashboards, `picaivid_queue_backlog_per_worker` is what the ECS services scale on (the AWS
target-tracking "backlog per instance" recipe): visible messages divided by the live workers of that
queue's type. With no worker it reports the backlog itself, so a non-empty queue scales the fleet up
from zero, and an empty one (0) lets it scale in to zero.

Pure DB/SQS reads, no FastAPI: `GET /internal/metrics` and any exporter process can use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.aws import aws_client
from app.config import Settings
from app.db.models import Clip, Job, JobPhase, JobStatus, OutboxMessage, PhaseStatus, Worker, utcnow
from app.phases.base import PHASE_NAMES
from app.queue.sqs import SqsQueue

__all__ = [
    "CLIP_RENDER_BUCKETS",
    "CONTENT_TYPE_LATEST",
    "PHASE_DURATION_BUCKETS",
    "WORKER_LIVE_SECONDS",
    "PicaividCollector",
    "build_registry",
    "configured_queues",
    "monitoring_client",
    "render_metrics",
]

log = logging.getLogger(__name__)

#: Phase durations span a 1 s timeline plan to a half-hour GPU render.
PHASE_DURATION_BUCKETS: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1800)
#: One clip: a Ken Burns encode takes seconds, a generative render minutes.
CLIP_RENDER_BUCKETS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
#: A worker whose heartbeat is older than this is gone (heartbeats come every WORKER_HEARTBEAT_SECONDS,
#: 20 s by default, so this tolerates a few missed beats before scaling stops counting it).
WORKER_LIVE_SECONDS = 120
#: SQS message states as the metric names them, and the depth attribute behind each.
_QUEUE_STATES = (("visible", "visible"), ("in_flight", "in_flight"), ("delayed", "delayed"))


def monitoring_client(settings: Settings, service: str) -> Any:
    """A boto3 client for probes and scrapes: one attempt, short timeouts. A scrape or a readiness
    probe must answer quickly that a dependency is down, not retry for half a minute like the senders."""
    return aws_client(settings, service, max_attempts=1, connect_timeout=2, read_timeout=5)


def configured_queues(settings: Settings, client: Any) -> dict[str, SqsQueue]:
    """The queues this deployment has, by the worker type that consumes them ("cpu", "gpu")."""
    urls = {"cpu": settings.SQS_QUEUE_URL, "gpu": settings.SQS_GPU_QUEUE_URL}
    return {name: SqsQueue(client, url) for name, url in urls.items() if url}


def _bucket_label(bound: float) -> str:
    return f"{float(bound):g}"


def _histograms(
    session: Session, value: Any, group: Any, where: ColumnElement[bool], buckets: Sequence[float]
) -> dict[Any, tuple[list[tuple[str, float]], float]]:
    """Cumulative histogram buckets per `group` value, counted by the database (one row per group, never
    one row per observation)."""
    columns = [func.count(value), func.coalesce(func.sum(value), 0.0)]
    columns += [func.coalesce(func.sum(case((value <= bound, 1), else_=0)), 0) for bound in buckets]
    stmt = select(group, *columns).where(where, value.is_not(None)).group_by(group)
    result: dict[Any, tuple[list[tuple[str, float]], float]] = {}
    for row in session.execute(stmt):
        key, count, total, *cumulative = row
        pairs = [(_bucket_label(b), float(c)) for b, c in zip(buckets, cumulative, strict=True)]
        pairs.append(("+Inf", float(count)))
        result[key] = (pairs, float(total))
    return result


def _empty_histogram(buckets: Sequence[float]) -> tuple[list[tuple[str, float]], float]:
    return [*((_bucket_label(b), 0.0) for b in buckets), ("+Inf", 0.0)], 0.0


class PicaividCollector:
    """A custom collector (`prometheus_client` calls `collect()` on every scrape)."""

    def __init__(
        self, sessions: sessionmaker[Session], queues: Mapping[str, SqsQueue], *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.sessions = sessions
        self.queues = dict(queues)
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        with self.sessions() as s:
            yield from self._job_metrics(s)
            live = self._live_workers(s)
            yield from self._worker_metrics(s, live)
        yield from self._queue_metrics(live)

    # --- database ---------------------------------------------------------------------------

    def _job_metrics(self, s: Session) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("picaivid_jobs", "Jobs by status.", labels=["status"])
        counts = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        for known in JobStatus:  # every status, zeros included, so alerts never see a missing series
            jobs.add_metric([known.value], float(counts.pop(known.value, 0)))
        for other, count in sorted(counts.items()):  # statuses written by a newer release
            jobs.add_metric([str(other)], float(count))
        yield jobs

        phases = HistogramMetricFamily(
            "picaivid_phase_duration_seconds",
            "Duration of completed phases (job_phases.duration_s).",
            labels=["phase", "name"],
        )
        rows = _histograms(
            s, JobPhase.duration_s, JobPhase.phase, JobPhase.status == PhaseStatus.COMPLETED, PHASE_DURATION_BUCKETS
        )
        for phase, name in PHASE_NAMES.items():
            buckets, total = rows.get(phase) or _empty_histogram(PHASE_DURATION_BUCKETS)
            phases.add_metric([str(phase), name], buckets, total)
        yield phases

        clips = HistogramMetricFamily(
            "picaivid_clip_render_seconds", "Render time of clips, by renderer.", labels=["renderer"]
        )
        renderer = func.coalesce(Clip.model_used, "unknown")
        for name, (buckets, total) in sorted(
            _histograms(s, Clip.render_seconds, renderer, Clip.render_seconds >= 0, CLIP_RENDER_BUCKETS).items()
        ):
            clips.add_metric([str(name)], buckets, total)
        yield clips

        unsent = s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None)))
        outbox = GaugeMetricFamily(
            "picaivid_outbox_unsent", "Staged queue messages not sent yet (a growing number means the relay is stuck)."
        )
        outbox.add_metric([], float(unsent or 0))
        yield outbox

    def _live_workers(self, s: Session) -> dict[tuple[str, str], int]:
        cutoff = self.clock() - timedelta(seconds=WORKER_LIVE_SECONDS)
        stmt = (
            select(Worker.worker_type, Worker.state, func.count())
            .where(Worker.last_seen_at >= cutoff)
            .group_by(Worker.worker_type, Worker.state)
        )
        return {(str(t), str(state)): int(n) for t, state, n in s.execute(stmt)}

    def _worker_metrics(self, s: Session, live: Mapping[tuple[str, str], int]) -> Iterator[Metric]:
        workers = GaugeMetricFamily(
            "picaivid_workers",
            f"Workers seen in the last {WORKER_LIVE_SECONDS} s, by type and state.",
            labels=["type", "state"],
        )
        for (worker_type, state), n in sorted(live.items()):
            workers.add_metric([worker_type, state], float(n))
        yield workers

        totals: dict[tuple[str, str], float] = {}
        for worker_type, counts in s.execute(select(Worker.worker_type, Worker.counts)):
            if not isinstance(counts, dict):
                continue
            for outcome, value in counts.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    key = (str(worker_type), str(outcome))
                    totals[key] = totals.get(key, 0.0) + float(value)
        messages = CounterMetricFamily(
            "picaivid_worker_messages_total",
            "Queue messages handled by workers, by outcome (sum of workers.counts).",
            labels=["type", "outcome"],
        )
        for (worker_type, outcome), total in sorted(totals.items()):
            messages.add_metric([worker_type, outcome], total)
        yield messages

    # --- SQS ---------------------------------------------------------------------------------

    def _queue_metrics(self, live: Mapping[tuple[str, str], int]) -> Iterator[Metric]:
        up = GaugeMetricFamily("picaivid_queue_up", "1 when the queue answered this scrape, else 0.", labels=["queue"])
        depth = GaugeMetricFamily(
            "picaivid_queue_messages", "Approximate messages in the queue, by state.", labels=["queue", "state"]
        )
        backlog = GaugeMetricFamily(
            "picaivid_queue_backlog_per_worker",
            "Visible messages per live worker of the queue's type (the visible count itself with no worker); "
            "the target-tracking scaling metric.",
            labels=["queue"],
        )
        for name, queue in sorted(self.queues.items()):
            try:
                d = queue.depth()
            except Exception as exc:  # an unreachable queue drops its series, never the whole scrape
                log.warning("metrics: queue %s (%s) did not answer: %s", name, queue.name, exc)
                up.add_metric([name], 0.0)
                continue
            up.add_metric([name], 1.0)
            for state, attr in _QUEUE_STATES:
                depth.add_metric([name, state], float(getattr(d, attr)))
            n_workers = sum(n for (worker_type, _state), n in live.items() if worker_type == name)
            backlog.add_metric([name], d.visible / n_workers if n_workers else float(d.visible))
        yield up
        yield depth
        yield backlog


def build_registry(collector: PicaividCollector) -> CollectorRegistry:
    """A private registry: the process-wide default one would add Python/GC metrics of one API replica,
    which say nothing about the fleet."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition (content type `CONTENT_TYPE_LATEST`)."""
    return generate_latest(registry)
