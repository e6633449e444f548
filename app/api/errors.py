"""Every error the API answers, in one shape (`schemas.ErrorOut`):

    {"error": {"code": "JobNotFoundError", "message": "job 42 does not exist", "details": []}}

whatever raised it: a `PicaividError` (its class is the code), FastAPI's request validation (code
`ValidationError`, one detail per field), an `HTTPException` (401, 404, 405, 413: the HTTP meaning is the
code), the database (503), or a bug (500 `InternalError`, traceback to the log only).

Error bodies are bounded and always encodable: messages are one line of at most 500 characters, a
validation error echoes at most 20 problems and only a shortened form of each offending value (no
request echoed back whole), NaN and Infinity become strings, lone surrogates and NUL characters are
escaped, and absolute paths of this installation (storage root, work dir, temp dir, code) are replaced
by placeholders.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import app as app_package
from app.config import Settings
from app.errors import (
    EditRejectedError,
    InvalidInputError,
    JobBusyError,
    JobNotFoundError,
    PhaseOrderError,
    PicaividError,
    StorageError,
)

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

#: `code` of errors that are not a PicaividError, by status.
HTTP_CODES: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "ValidationError",
    500: "InternalError",
    503: "ServiceUnavailable",
}

MAX_MESSAGE_CHARS = 500
MAX_DETAILS = 20
MAX_INPUT_CHARS = 100
MAX_LOC_CHARS = 64
MAX_LOC_PARTS = 12
#: Validation errors whose `input` only repeats the request (the enclosing object, an empty stand-in).
_NO_INPUT = frozenset({"missing", "json_invalid"})


def status_for(exc: PicaividError) -> int:
    for cls, code in ERROR_STATUS:
        if isinstance(exc, cls):
            return code
    return 500  # a PicaividError nobody mapped: its message is still user-facing, so it is shown


# --- making any text safe to send ----------------------------------------------------------------


def safe_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """One line of valid UTF-8 with NUL and lone surrogates escaped, at most `limit` characters."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def brief_input(value: Any) -> Any:
    """A JSON-encodable, bounded stand-in for an offending value."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str | bytes):
        return safe_text(_as_str(value), MAX_INPUT_CHARS)
    if isinstance(value, int):
        return value if abs(value) <= 2**53 else f"<integer of {value.bit_length()} bits>"
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list | tuple):
        return f"<array of {len(value)} items>"
    if isinstance(value, dict):
        return f"<object with {len(value)} keys>"
    return f"<{type(value).__name__}>"


def _as_str(value: str | bytes) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def _loc(parts: Iterable[Any]) -> list[str | int]:
    return [
        p if isinstance(p, int) and not isinstance(p, bool) else safe_text(str(p), MAX_LOC_CHARS)
        for p in list(parts)[:MAX_LOC_PARTS]
    ]


def _where(loc: Sequence[str | int]) -> str:
    """`body.photos[3].uri` from `["body", "photos", 3, "uri"]`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "request"


def validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    details: list[dict[str, Any]] = []
    for err in errors[:MAX_DETAILS]:
        err = err if isinstance(err, dict) else {"msg": str(err)}
        item: dict[str, Any] = {
            "loc": _loc(err.get("loc", ())),
            "message": safe_text(str(err.get("msg", "invalid")).removeprefix("Value error, "), 200),
            "type": safe_text(str(err.get("type", "invalid")), MAX_LOC_CHARS),
        }
        if "input" in err and err.get("type") not in _NO_INPUT:
            item["input"] = brief_input(err["input"])
        details.append(item)
    return details


class PathRedactor:
    """Replaces this installation's absolute paths in a message with placeholders: a client learns
    where its input went wrong, not where the service keeps its files."""

    def __init__(self, settings: Settings) -> None:
        named: list[tuple[Path, str]] = [
            (Path(settings.LOCAL_STORAGE_PATH), "<storage>"),
            (Path(settings.WORK_DIR), "<work>"),
            (Path(settings.MODEL_CACHE_DIR), "<models>"),
            (Path(app_package.__file__).parent.parent, "<app>"),
            (Path(sys.prefix), "<prefix>"),
            (Path(tempfile.gettempdir()), "<tmp>"),
        ]
        pairs: dict[str, str] = {}
        for path, placeholder in named:
            for form in (path.expanduser().absolute(), path.expanduser().resolve()):
                if len(form.parts) > 1:  # never "/" itself
                    pairs.setdefault(str(form), placeholder)
        self.placeholders = pairs
        # One pass, longest path first, whole paths only: "/tmp" is not in "/tmpfiles" nor in "/work/tmp".
        alternatives = "|".join(re.escape(p) for p in sorted(pairs, key=len, reverse=True))
        self.pattern = re.compile(f"(?<![\\w.-])(?:{alternatives})(?![\\w.-])") if pairs else None

    def __call__(self, text: str) -> str:
        if self.pattern is None:
            return text
        return self.pattern.sub(lambda m: self.placeholders[m.group(0)], text)


# --- responses ------------------------------------------------------------------------------------


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[dict[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": safe_text(message) or code, "details": list(details)}}
    return JSONResponse(body, status_code=status, headers=headers)


def http_code(status: int) -> str:
    if status in HTTP_CODES:
        return HTTP_CODES[status]
    try:
        return "".join(word.capitalize() for word in HTTPStatus(status).phrase.split())
    except ValueError:
        return f"HTTP{status}"


def validation_message(details: Sequence[dict[str, Any]], total: int) -> str:
    if not details:
        return "invalid request"
    first = details[0]
    more = f" (and {total - 1} more problem(s))" if total > 1 else ""
    return f"{_where(first['loc'])}: {first['message']}{more}"


def redact_summary(summary: dict[str, Any], redact: PathRedactor) -> dict[str, Any]:
    """A job summary (`orchestrator.job_summary`) with the recorded error texts redacted: workers store
    user-facing messages, but ffmpeg's and the storage's may name files under the work dir."""
    phases = [{**p, "error": redact(p["error"]) if p.get("error") else p.get("error")} for p in summary["phases"]]
    warnings = [redact(w) if isinstance(w, str) else w for w in summary.get("warnings") or []]
    error = redact(summary["error"]) if summary.get("error") else summary.get("error")
    return {**summary, "error": error, "phases": phases, "warnings": warnings}


def install_error_handlers(app: FastAPI, settings: Settings) -> None:
    """Register the handlers that give every error the one shape; `app.state.redact` is the path
    redactor they use, for routes that show recorded error texts."""
    redact = PathRedactor(settings)
    app.state.redact = redact

    async def picaivid_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PicaividError)
        status = status_for(exc)
        level = logging.WARNING if status >= 500 else logging.INFO
        log.log(level, "%s %s -> %s %s: %s", request.method, request.url.path, status, type(exc).__name__, exc)
        return error_response(status, type(exc).__name__, redact(str(exc)) or type(exc).__name__)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return error_response(exc.status_code, http_code(exc.status_code), redact(message), headers=exc.headers)

    async def request_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        details = validation_details(errors)
        for item in details:
            item["message"] = redact(item["message"])
        message = validation_message(details, len(errors))
        log.info("%s %s -> 422 ValidationError: %s", request.method, request.url.path, message)
        return error_response(422, "ValidationError", message, details)

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        # Connection refused, server gone, SQLite locked: the service is unavailable, not broken. The
        # driver's message names hosts and users, so it goes to the log only.
        log.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
        return error_response(503, "DatabaseUnavailable", "database unavailable")

    async def unstorable(request: Request, exc: Exception) -> JSONResponse:
        # The request validation bounds ids and text; this is the net under it (a value out of a column's
        # range, text the database refuses). The driver's message stays in the log.
        log.warning("%s %s: database refused a value: %s", request.method, request.url.path, exc)
        return error_response(422, "InvalidInputError", "a value in the request is out of range or cannot be stored")

    app.add_exception_handler(PicaividError, picaivid_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(OperationalError, database_down)
    app.add_exception_handler(DataError, unstorable)


# --- middlewares ----------------------------------------------------------------------------------


class UnhandledErrorMiddleware:
    """Any other exception: 500 `InternalError`, traceback to the log only. A middleware rather than an
    `Exception` handler: Starlette re-raises after such a handler, so the server would log the traceback
    a second time and test clients would see the exception instead of the response."""

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
            await error_response(500, "InternalError", "internal error")(scope, receive, send)


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimitMiddleware:
    """413 for a request body over `max_bytes`: at once when Content-Length says so, else as soon as the
    bytes received (chunked uploads, a Content-Length that lies) pass the limit, before anything parses
    them. Raised from `receive` as an HTTPException, which FastAPI's body reading lets through to the
    exception handlers; caught here when something else was reading."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        log.info("%s %s -> 413 (body over %d bytes)", scope.get("method"), scope.get("path"), self.max_bytes)
        response = error_response(413, "PayloadTooLarge", f"the request body is larger than {self.max_bytes} bytes")
        response.headers["Connection"] = "close"  # the rest of the body is never read
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
