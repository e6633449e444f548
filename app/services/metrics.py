"""Prometheus metrics for the fleet, read at scrape time from Postgres and SQS (no in-process counters:
the API may run as several replicas and the workers as many processes, and the database and the queues
are the shared truth).

Besides dashboards, `picaivid_queue_backlog_per_worker` is what the ECS services scale on (the AWS
target-tracking "backlog per instance" recipe): visible messages divided by the live workers of that
queue's type. With no worker it reports the backlog itself, so a non-empty queue scales the fleet up
from zero, and an empty one (0) lets it scale in to zero.

Renderer health: `picaivid_clips{renderer,status}` counts clips by the renderer that made them
(`clips.model_used`), `picaivid_render_downgrades{renderer,reason}` the failed rungs of the ladder
recorded in `clips.render_log` (a normalised reason code, so the label set stays small), and
`picaivid_worker_renderers{type,renderer}` / `picaivid_worker_components_skipped{type,component}` what
the live workers advertise in their rows.

Pure DB/SQS reads, no FastAPI: `GET /internal/metrics` and any exporter process can use it.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
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
from app.worker.registry import worker_capabilities

__all__ = [
    "CLIP_RENDER_BUCKETS",
    "CONTENT_TYPE_LATEST",
    "PHASE_DURATION_BUCKETS",
    "WORKER_LIVE_SECONDS",
    "PicaividCollector",
    "build_registry",
    "configured_queues",
    "monitoring_client",
    "reason_code",
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
#: Clip rows read per round trip when counting downgrades from their render logs.
_RENDER_LOG_BATCH = 500
#: Reason codes for the validator's and the renderers' texts, first match wins (see `reason_code`).
_REASON_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (code, re.compile(pattern, re.IGNORECASE))
    for code, pattern in (
        ("no_depth", r"\bno depth\b"),
        ("frozen", r"\bfrozen\b"),
        ("black_frame", r"\bis black\b"),
        ("undecodable", r"\b(does not decode|failed to decode)\b"),
        ("frame_count", r"\bframes, expected\b"),
        ("fps", r"\bfps, expected\b"),
        ("size", r"^size \d+x\d+"),
        ("codec", r"^codec\b"),
        ("wrong_view", r"\bdoes not show the planned view\b"),
        ("low_score", r"^score \d"),
        ("out_of_memory", r"\bout of memory\b|OutOfMemoryError"),
    )
)
#: An exception class name at the start of a reason ("RuntimeError: ..."): the class is the code.
_EXCEPTION_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*(?:Error|Exception|Exit|Timeout|Interrupt))\b")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_REASON_CODE = 40
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


def reason_code(reason: str) -> str:
    """A short, stable code for one downgrade reason, so a metric label never carries free text: a known
    validator/renderer case (`no_depth`, `frozen`, `black_frame`, `frame_count`, `wrong_view`,
    `low_score`, `out_of_memory`, ...), else the exception class a reason starts with
    (``"RuntimeError: ..."``), else the reason's first word, lower-cased and cut short."""
    text = reason.strip()
    for code, pattern in _REASON_PATTERNS:
        if pattern.search(text):
            return code
    exception = _EXCEPTION_NAME.match(text)
    if exception is not None:
        return exception.group(1).rsplit(".", 1)[-1][:_MAX_REASON_CODE]
    word = _IDENTIFIER.search(text)
    return word.group(0).lower()[:_MAX_REASON_CODE] if word else "other"


def attempt_reason_code(attempt: Mapping[str, Any]) -> str:
    """The code of a failed attempt: of its first reason (the validator lists hard failures first)."""
    reasons = attempt.get("reasons")
    if not reasons and attempt.get("reason"):  # an older log entry with one reason
        reasons = [attempt["reason"]]
    if isinstance(reasons, list) and reasons and isinstance(reasons[0], str):
        return reason_code(reasons[0])
    return "declined" if attempt.get("declined") else "rejected"


def downgrade_counts(render_logs: Iterable[object]) -> Counter[tuple[str, str]]:
    """Failed attempts by (renderer, reason code) over clips' render logs; malformed entries are skipped."""
    counts: Counter[tuple[str, str]] = Counter()
    for log_entries in render_logs:
        if not isinstance(log_entries, list):
            continue
        for attempt in log_entries:
            if not isinstance(attempt, dict) or attempt.get("passed", attempt.get("ok", False)):
                continue
            counts[(str(attempt.get("renderer") or "unknown"), attempt_reason_code(attempt))] += 1
    return counts


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
            yield from self._renderer_metrics(s)
            live = self._live_workers(s)
            yield from self._worker_metrics(s, live)
            yield from self._capability_metrics(s)
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

    def _renderer_metrics(self, s: Session) -> Iterator[Metric]:
        clips = GaugeMetricFamily(
            "picaivid_clips",
            "Clips by the renderer that made them (clips.model_used; none before a render) and status.",
            labels=["renderer", "status"],
        )
        renderer = func.coalesce(Clip.model_used, "none")
        stmt = select(renderer, Clip.status, func.count()).group_by(renderer, Clip.status)
        for name, clip_status, n in sorted(s.execute(stmt).all(), key=lambda r: (str(r[0]), str(r[1]))):
            clips.add_metric([str(name), str(clip_status)], float(n))
        yield clips

        downgrades = GaugeMetricFamily(
            "picaivid_render_downgrades",
            "Failed renderer attempts recorded in clips.render_log (each stepped the clip down the ladder, "
            "or failed it on the last rung), by renderer and reason code.",
            labels=["renderer", "reason"],
        )
        logs = s.scalars(
            select(Clip.render_log).where(Clip.render_attempts > 0).execution_options(yield_per=_RENDER_LOG_BATCH)
        )
        for (name, code), n in sorted(downgrade_counts(logs).items()):
            downgrades.add_metric([name, code], float(n))
        yield downgrades

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

    def _capability_metrics(self, s: Session) -> Iterator[Metric]:
        cutoff = self.clock() - timedelta(seconds=WORKER_LIVE_SECONDS)
        offered: Counter[tuple[str, str]] = Counter()
        skipped: Counter[tuple[str, str]] = Counter()
        for worker_type, counts in s.execute(
            select(Worker.worker_type, Worker.counts).where(Worker.last_seen_at >= cutoff)
        ):
            capabilities = worker_capabilities(counts)
            for name in capabilities.get("renderers") or []:
                offered[(str(worker_type), str(name))] += 1
            for name in capabilities.get("skipped") or {}:
                skipped[(str(worker_type), str(name))] += 1
        renderers = GaugeMetricFamily(
            "picaivid_worker_renderers",
            f"Workers seen in the last {WORKER_LIVE_SECONDS} s that can run each renderer, by type.",
            labels=["type", "renderer"],
        )
        for (worker_type, name), n in sorted(offered.items()):
            renderers.add_metric([worker_type, name], float(n))
        yield renderers
        left_out = GaugeMetricFamily(
            "picaivid_worker_components_skipped",
            f"Workers seen in the last {WORKER_LIVE_SECONDS} s that left a configured renderer or model out "
            "(the reason is in the worker's row), by type.",
            labels=["type", "component"],
        )
        for (worker_type, name), n in sorted(skipped.items()):
            left_out.add_metric([worker_type, name], float(n))
        yield left_out

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
