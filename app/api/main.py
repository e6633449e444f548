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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.deps import UNAUTHORIZED_DETAIL, ApiState, require_api_key
from app.api.routes import edits, health, jobs, metrics
from app.api.schemas import ErrorOut
from app.callbacks import CallbackSink
from app.config import Settings, get_settings
from app.db.models import Job
from app.db.session import session_factory, session_scope
from app.errors import (
    EditRejectedError,
    InvalidInputError,
    JobBusyError,
    JobNotFoundError,
    PhaseOrderError,
    PicaividError,
    StorageError,
)
from app.phases.base import PhaseContext
from app.services.dispatch import Dispatcher
from app.services.metrics import PicaividCollector, build_registry, configured_queues, monitoring_client
from app.storage import get_storage

log = logging.getLogger(__name__)

#: HTTP status per error class, most specific first (EditRejectedError is an InvalidInputError).
ERROR_STATUS: tuple[tuple[type[PicaividError], int], ...] = (
    (JobNotFoundError, 404),
    (EditRejectedError, 422),
    (InvalidInputError, 422),
    (PhaseOrderError, 409),
    (JobBusyError, 409),
    (StorageError, 503),
)

TAGS: list[dict[str, Any]] = [
    {"name": "jobs", "description": "Create jobs from stored photos and music, follow them, re-run them."},
    {"name": "edits", "description": "Change a job's timeline or inputs; the affected phases re-run."},
    {"name": "metrics", "description": "Prometheus metrics for dashboards and autoscaling."},
    {"name": "health", "description": "Liveness and readiness probes (no API key)."},
]


def status_for(exc: PicaividError) -> int:
    for cls, code in ERROR_STATUS:
        if isinstance(exc, cls):
            return code
    return 500  # a PicaividError nobody mapped: its message is still user-facing, so it is shown


def one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


async def picaivid_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PicaividError)
    code = status_for(exc)
    log.log(
        logging.WARNING if code >= 500 else logging.INFO,
        "%s %s -> %s %s: %s",
        request.method,
        request.url.path,
        code,
        type(exc).__name__,
        exc,
    )
    body = ErrorOut(detail=one_line(str(exc)) or type(exc).__name__, error=type(exc).__name__)
    return JSONResponse(body.model_dump(), status_code=code)


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # Connection refused, server gone, SQLite locked: the service is unavailable, not broken. The
    # driver's message names hosts and users, so it goes to the log only.
    log.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "database unavailable", "error": "DatabaseUnavailable"}, status_code=503)


class UnhandledErrorMiddleware:
    """Any other exception: 500 `{"detail": "internal error"}`, traceback to the log only. A middleware
    rather than an `Exception` handler: Starlette re-raises after such a handler, so the server would log
    the traceback a second time and test clients would see the exception instead of the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:  # too late for a clean response; let the server close the connection
                raise
            await JSONResponse({"detail": "internal error"}, status_code=500)(scope, receive, send)


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


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new application. Tests pass their own `Settings`; nothing else reads the environment."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Picaivid media service",
        summary="Listing photos + music in, beat-synced listing video out.",
        description="Internal API for the Rails backend: create jobs from stored inputs, follow their four "
        "phases (analyze, render, timeline, assemble), edit timelines and re-run phases. Every "
        "`/internal` route needs the `X-API-Key` header.",
        version="0.1.0",
        openapi_tags=TAGS,
        lifespan=lifespan,
        debug=False,  # never tracebacks in responses, whatever DEBUG says
    )
    app.state.settings = settings
    app.state.api = None

    app.add_middleware(UnhandledErrorMiddleware)
    if settings.CORS_ORIGINS:  # added last, so it wraps everything, error responses included
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[str(o).rstrip("/") for o in settings.CORS_ORIGINS],
            allow_credentials=False,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_exception_handler(PicaividError, picaivid_error_handler)
    app.add_exception_handler(OperationalError, database_error_handler)

    internal = APIRouter(
        prefix="/internal",
        dependencies=[Depends(require_api_key)],
        responses={401: {"model": ErrorOut, "description": UNAUTHORIZED_DETAIL}},
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
    environment, while importing this module (tests, tools) reads no settings and builds nothing."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
