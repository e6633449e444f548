"""Structured logs: one JSON object per line, carrying the job, phase and clip being worked on.

* Context, not arguments: `bind(job_id=…, phase=…, clip_id=…)` sets context variables for the code
  below it (threads started inside copy nothing, so workers bind in the thread doing the work), and
  every record logged meanwhile carries them. Call sites keep writing plain `log.info("…")`.
* Secrets never reach a log: `SecretRedactor` replaces every configured secret (API key, callback
  secret, AWS secret, the database password) in the message, its arguments and tracebacks with ``***``.
* `configure_logging(settings, stream=…)` is the one set-up for the CLI (a file), the workers and the
  API (stderr); ``LOG_FORMAT=text`` gives classic lines for a person at a terminal.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import traceback
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

_job_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("picaivid_job_id", default=None)
_phase: contextvars.ContextVar[int | None] = contextvars.ContextVar("picaivid_phase", default=None)
_clip_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("picaivid_clip_id", default=None)
_CONTEXT = {"job_id": _job_id, "phase": _phase, "clip_id": _clip_id}

#: LogRecord attributes that are not "extra" fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
#: Loggers that say too much at INFO.
NOISY = ("botocore", "boto3", "urllib3", "httpx", "httpcore", "numba", "s3transfer", "PIL", "multipart", "alembic")


@contextlib.contextmanager
def bind(**values: int | None) -> Iterator[None]:
    """Attach job_id / phase / clip_id to every record logged inside the block (this thread/task)."""
    tokens = [(_CONTEXT[name], _CONTEXT[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_context() -> dict[str, int]:
    return {name: value for name, var in _CONTEXT.items() if (value := var.get()) is not None}


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record (so any formatter can use it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_context().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class SecretRedactor(logging.Filter):
    """Replaces secrets in the final message and traceback text with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole; short values (a
        # one-letter test key) would blank out ordinary words, so they are kept only from 4 chars.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, job_id/phase/clip_id when bound, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["exc"] = record.exc_text.rstrip()
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Classic lines, with the bound context in brackets: ``… INFO app.x [job=3 phase=2]: message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ctx = " ".join(f"{k.replace('_id', '')}={getattr(record, k)}" for k in _CONTEXT if hasattr(record, k))
        record.context = f" [{ctx}]" if ctx else ""
        return super().format(record)


def secrets_of(settings: Any) -> list[str]:
    """Every secret a Settings object holds: values of *KEY/*SECRET/*TOKEN/*PASSWORD settings and the
    password inside DATABASE_URL."""
    found = []
    for name, value in vars(settings).items():
        if isinstance(value, str) and any(word in name for word in ("KEY", "SECRET", "TOKEN", "PASSWORD")):
            found.append(value)
    with contextlib.suppress(ValueError):
        password = urlsplit(str(getattr(settings, "DATABASE_URL", ""))).password
        if password:
            found.append(password)
    return found


def configure_logging(settings: Any, *, stream: IO[str] | None = None, file: Path | None = None) -> None:
    """Route every log record through the context filter, the secret redactor and one formatter."""
    handler: logging.Handler = (
        logging.FileHandler(file, encoding="utf-8") if file else logging.StreamHandler(stream or sys.stderr)
    )
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretRedactor(secrets_of(settings)))
    handler.setFormatter(TextFormatter() if getattr(settings, "LOG_FORMAT", "json") == "text" else JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(str(getattr(settings, "LOG_LEVEL", "INFO")).upper())
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
