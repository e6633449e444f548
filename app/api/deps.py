"""Dependencies the routes declare: settings, the phase context, a database session, the dispatcher,
the API-key check.

Everything long-lived (context, dispatcher, metrics registry, probe clients) is built once by the app's
lifespan (`app.api.main`) and kept on `app.state`; these functions only hand it out, so a test builds an
app from its own `Settings` and nothing is read from the environment behind its back.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Path, Request, Security, status
from fastapi.security import APIKeyHeader
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session

from app.api.errors import PathRedactor
from app.api.schemas import DB_INT_MAX, Text
from app.callbacks import CallbackSink
from app.config import Settings
from app.db.session import session_scope
from app.phases.base import PhaseContext
from app.services.dispatch import Dispatcher

#: The header Rails sends. `auto_error=False`: a missing key gets the same 401 as a wrong one (FastAPI's
#: own would be a 403 with another message).
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="APIKey", description="The shared secret configured as API_KEY."
)

UNAUTHORIZED_DETAIL = "missing or invalid X-API-Key"


@dataclass
class ApiState:
    """What the lifespan builds once per process."""

    ctx: PhaseContext
    dispatcher: Dispatcher
    metrics: CollectorRegistry
    #: boto3 clients with one attempt and short timeouts, for /ready (None when not configured).
    sqs_probe: Any | None = None
    s3_probe: Any | None = None
    #: Embedded mode only: progress callbacks for the jobs this process runs.
    callbacks: CallbackSink | None = None


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_state(request: Request) -> ApiState:
    state: ApiState | None = getattr(request.app.state, "api", None)
    if state is None:  # a bare TestClient(app) without `with` never ran the lifespan
        raise RuntimeError("the API's lifespan has not run (use `with TestClient(app)` or an ASGI server)")
    return state


def get_redactor(request: Request) -> PathRedactor:
    redact: PathRedactor = request.app.state.redact
    return redact


def get_context(state: Annotated[ApiState, Depends(get_state)]) -> PhaseContext:
    return state.ctx


def get_dispatcher(state: Annotated[ApiState, Depends(get_state)]) -> Dispatcher:
    return state.dispatcher


def get_session(ctx: Annotated[PhaseContext, Depends(get_context)]) -> Iterator[Session]:
    """One transaction per request, for routes that read (writes go through the services, which own
    their transactions so that the CLI and the workers share them)."""
    with session_scope(ctx.sessions) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
StateDep = Annotated[ApiState, Depends(get_state)]
ContextDep = Annotated[PhaseContext, Depends(get_context)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
SessionDep = Annotated[Session, Depends(get_session)]
#: Replaces this installation's paths in recorded error texts before they are shown.
RedactDep = Annotated[PathRedactor, Depends(get_redactor)]
UserIdDep = Annotated[
    Text | None, Header(alias="X-User-Id", max_length=128, description="Who made the change (stored on the edit).")
]
#: A job id in a path: 1 .. 2^31-1 (the id column's range), else 422 rather than a database error.
JobId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="The job's id.", examples=[42])]


def require_api_key(settings: SettingsDep, api_key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """Every /internal route. Constant-time comparison, so the key cannot be guessed byte by byte from
    response times. An empty API_KEY locks /internal entirely rather than opening it."""
    expected = settings.API_KEY
    if not expected or not api_key or not hmac.compare_digest(api_key.encode("utf-8"), expected.encode("utf-8")):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED, detail=UNAUTHORIZED_DETAIL, headers={"WWW-Authenticate": "APIKey"}
        )
