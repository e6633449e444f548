"""Process entry point of a worker: `picaivid worker --type cpu|gpu` and `python -m app.worker`."""

from __future__ import annotations

from app.config import Settings, get_settings
from app.errors import InvalidInputError
from app.logs import configure_logging
from app.worker.loop import Worker, WorkerType, callback_url_lookup


def build_worker(worker_type: WorkerType, settings: Settings | None = None) -> Worker:
    from app.callbacks import CallbackSink
    from app.components import Components
    from app.db.migrate import ensure_schema
    from app.db.session import session_factory
    from app.phases.base import PhaseContext
    from app.queue.sqs import SqsQueue, sqs_client
    from app.storage import get_storage

    settings = settings or get_settings()
    url = settings.SQS_QUEUE_URL if worker_type == "cpu" else settings.SQS_GPU_QUEUE_URL
    if not url:
        name = "SQS_QUEUE_URL" if worker_type == "cpu" else "SQS_GPU_QUEUE_URL"
        raise InvalidInputError(
            f"a {worker_type} worker needs {name} (run `picaivid queues create` to make "
            "the queues, or see scripts/fleet.sh)"
        )
    if settings.is_sqlite:
        raise InvalidInputError(
            "fleet workers need PostgreSQL (DATABASE_URL=postgresql://...); SQLite is "
            "the embedded single-machine mode (`picaivid render`)"
        )
    ensure_schema(settings.DATABASE_URL)
    # Models and renderers are built once per worker process and handed to every phase it runs.
    components = Components.from_settings(settings, gpu=worker_type == "gpu")
    ctx = PhaseContext(
        settings=settings,
        sessions=session_factory(settings.DATABASE_URL),
        storage=get_storage(settings),
        components=components,
    )
    client = sqs_client(settings)
    callbacks = CallbackSink(settings, url_for_job=callback_url_lookup(ctx))
    return Worker(ctx, worker_type, SqsQueue(client, url), callbacks=callbacks)


def run_worker(worker_type: WorkerType, *, max_messages: int | None = None) -> int:
    settings = get_settings()
    configure_logging(settings)
    worker = build_worker(worker_type, settings)
    if worker_type == "cpu":
        # Phase 3 uses librosa: compile its kernels (or find them compiled) before taking a message, under
        # the cache's lock, so workers starting together on one host never race on the cache.
        from app.media.audio import warm_numba_cache

        warm_numba_cache()
    return worker.run(max_messages=max_messages)
