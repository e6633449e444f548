"""The queue message contract (../shared/design/data-model.md).

Rails sends ``{"job_id": <int>, "action": "run", "start_phase": <1..4 or absent>}``; the worker reads
everything else from Postgres. Messages the fleet sends itself may add:

* ``clip_id`` — a phase-2 message for one clip (GPU queue);
* ``generation`` — the job generation the message was written for: a clip message of an older run
  (the job was re-run since) is recognised as stale and dropped;
* ``reason`` — free text for the logs ("fan-out", "phase 2 complete", "edit 12: reorder").
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.errors import PicaividError


class MalformedMessageError(PicaividError):
    """A message that can never be processed: not JSON, wrong shape, unknown action. Deleted, never
    retried."""

    exit_code = 2
    permanent = True


class JobMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: int = Field(gt=0)
    action: Literal["run"] = "run"
    start_phase: int | None = Field(default=None, ge=1, le=4)
    clip_id: int | None = Field(default=None, gt=0)
    generation: int | None = Field(default=None, ge=1)
    reason: str | None = Field(default=None, max_length=200)

    def body(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True), sort_keys=True)


def parse_message(body: str) -> JobMessage:
    """Parse a queue body, or raise `MalformedMessageError` saying exactly what is wrong."""
    try:
        data: Any = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        raise MalformedMessageError(f"body is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MalformedMessageError(f"body is a JSON {type(data).__name__}, not an object")
    if "action" in data and data["action"] != "run":
        raise MalformedMessageError(f"unknown action {data['action']!r}; the only action is 'run'")
    if isinstance(data.get("job_id"), bool) or isinstance(data.get("start_phase"), bool):
        raise MalformedMessageError("job_id and start_phase must be integers")
    try:
        return JobMessage.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise MalformedMessageError(f"{where}: {first['msg']}") from None
