"""The FastAPI application: `create_app(settings)` builds one; `uvicorn app.api.main:app` serves the one
built from the environment.

Layout (tiangolo's full-stack template): dependencies in `deps.py`, one router per concern in `routes/`,
wire schemas in `schemas.py`; the use cases themselves live in `app.services` and are shared with the
CLI and the workers.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.orm import Session, sessionmaker

from app.api.deps import ApiState, require_api_key
from app.api.errors import BodyLimitMiddleware, UnhandledErrorMiddleware, install_error_handlers
from app.api.routes import edits, health, jobs, metrics
from app.api.schemas import error_responses
from app.callbacks import CallbackSink
from app.config import Settings, get_settings
from app.db.models import Job
from app.db.session import session_factory, session_scope
from app.errors import SettingsError
from app.phases.base import PhaseContext
from app.services.dispatch import Dispatcher
from app.services.metrics import PicaividCollector, build_registry, configured_queues, monitoring_client
from app.storage import get_storage

log = logging.getLogger(__name__)

TAGS: list[dict[str, Any]] = [
    {"name": "jobs", "description": "Create jobs from stored photos and music, follow them, re-run them."},
    {"name": "edits", "description": "Change a job's timeline or inputs; the affected phases re-run."},
    {"name": "metrics", "description": "Prometheus metrics for dashboards and autoscaling."},
    {"name": "health", "description": "Liveness and readiness probes (no API key)."},
]


def _callback_url_lookup(sessions: sessionmaker[Session]) -> Callable[[int], str | None]:
    def lookup(job_id: int) -> str | None:
        with session_scope(sessions) as s:
            job = s.get(Job, job_id)
            return job.callback_url if job is not None else None

    return lookup


def build_state(settings: Settings) -> ApiState:
    """The long-lived objects of one API process (no network I/O: boto3 clients connect lazily)."""
    ctx = PhaseContext(
        settings=settings,
        sessions=session_factory(settings.DATABASE_URL),
        storage=get_storage(settings),
        worker_id=f"api-{socket.gethostname()}-{os.getpid()}",
    )
    dispatcher = Dispatcher.for_context(ctx)
    callbacks: CallbackSink | None = None
    if dispatcher.inline is not None:
        # Embedded mode renders in this process, so this process owes the backend its progress callbacks
        # (in fleet mode the workers send them). The runner shares `ctx`, so setting the sink here reaches it.
        callbacks = CallbackSink(settings, url_for_job=_callback_url_lookup(ctx.sessions))
        ctx.progress_sink = callbacks
    sqs_probe = monitoring_client(settings, "sqs") if settings.SQS_QUEUE_URL or settings.SQS_GPU_QUEUE_URL else None
    s3_probe = monitoring_client(settings, "s3") if settings.S3_BUCKET else None
    registry = build_registry(
        PicaividCollector(ctx.sessions, configured_queues(settings, sqs_probe) if sqs_probe else {})
    )
    return ApiState(
        ctx=ctx, dispatcher=dispatcher, metrics=registry, sqs_probe=sqs_probe, s3_probe=s3_probe, callbacks=callbacks
    )


def _startup(settings: Settings, state: ApiState) -> None:
    if settings.is_sqlite:
        # Embedded mode migrates itself like the CLI does; fleet databases are migrated by the deploy.
        from app.db.migrate import ensure_schema

        try:
            ensure_schema(settings.DATABASE_URL)
        except Exception:
            log.exception("could not migrate %s; /ready will say so", settings.DATABASE_URL)
    if not settings.is_fleet:
        # Jobs an earlier embedded process was running when it died resume now (their leases are dead).
        from app.services.runs import resume_orphaned_runs

        try:
            resumed = resume_orphaned_runs(state.ctx)
            if resumed:
                log.info("resuming job(s) %s left running by a stopped process", resumed)
        except Exception:
            log.exception("could not look for interrupted jobs; /ready will say whether the database is up")
    # Messages staged by a process that died between its commit and its send (the API's own, the CLI's)
    # go out now rather than waiting for the next request. flush() never raises.
    sent = state.dispatcher.flush()
    if sent:
        log.info("sent %d staged message(s) at startup", sent)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if not settings.API_KEY:
        log.warning("API_KEY is empty: every /internal route answers 401 until it is set")
    state = await run_in_threadpool(build_state, settings)
    app.state.api = state
    await run_in_threadpool(_startup, settings, state)
    log.info("picaivid API ready (%s mode, storage %s)", state.dispatcher.mode, type(state.ctx.storage).__name__)
    try:
        yield
    finally:
        state.dispatcher.close()
        if state.callbacks is not None:
            await run_in_threadpool(state.callbacks.close, 2.0)
        app.state.api = None


def _docs_enabled(settings: Settings) -> bool:
    """Swagger UI, ReDoc and the schema are for development and staging; production serves none of them
    (the routes, their inputs and their errors are still described by `app.openapi()` and the repo)."""
    return settings.ENVIRONMENT != "production"


def _add_middlewares(app: FastAPI, settings: Settings) -> None:
    # Innermost first: the body limit sits inside CORS, so a 413 carries the CORS headers too.
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.API_MAX_BODY_BYTES)
    if settings.CORS_ORIGINS:  # added last, so it wraps everything, error responses included
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[str(o).rstrip("/") for o in settings.CORS_ORIGINS],
            allow_credentials=False,
            allow_methods=["*"],
            allow_headers=["*"],
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new application. Tests pass their own `Settings`; nothing else reads the environment (a bad
    setting there raises `SettingsError` naming it)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Picaivid media service",
        summary="Listing photos + music in, beat-synced listing video out.",
        description="Internal API for the Rails backend: create jobs from stored inputs, follow their four "
        "phases (analyze, render, timeline, assemble), edit timelines and re-run phases. Every "
        "`/internal` route needs the `X-API-Key` header. Every error, whatever its status, has the body "
        '`{"error": {"code", "message", "details"}}` (`ErrorOut`).',
        version="0.1.0",
        openapi_tags=TAGS,
        lifespan=lifespan,
        debug=False,  # never tracebacks in responses, whatever DEBUG says
        responses=error_responses(500),
        docs_url="/docs" if _docs_enabled(settings) else None,
        redoc_url="/redoc" if _docs_enabled(settings) else None,
        openapi_url="/openapi.json" if _docs_enabled(settings) else None,
    )
    app.state.settings = settings
    app.state.api = None
    _add_middlewares(app, settings)
    install_error_handlers(app, settings)

    internal = APIRouter(
        prefix="/internal", dependencies=[Depends(require_api_key)], responses=error_responses(401, 503)
    )
    internal.include_router(jobs.router)
    internal.include_router(edits.router)
    internal.include_router(metrics.router)
    app.include_router(health.router)
    app.include_router(internal)
    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    """`app`, built on first access: `uvicorn app.api.main:app` gets an app configured from the
    environment, while importing this module (tests, tools) reads no settings and builds nothing. A bad
    setting ends the server process with one line naming it (exit 2), not a traceback."""
    global _app
    if name == "app":
        if _app is None:
            try:
                from app.config import get_settings
                from app.logs import configure_logging

                configure_logging(get_settings())  # the server's own logs: JSON lines on stderr
                _app = create_app()
            except SettingsError as exc:
                print(f"picaivid API: {exc}", file=sys.stderr)
                raise SystemExit(exc.exit_code) from None
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
