"""Liveness and readiness probes. Open (no API key): load balancers and ECS health checks call them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import SettingsDep, StateDep
from app.api.schemas import ErrorDetail, ErrorInfo, HealthOut, ReadyOut

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, summary="Liveness")
def health() -> HealthOut:
    """The process answers. No I/O: a database outage must not get healthy API containers killed."""
    return HealthOut()


@router.get(
    "/ready",
    response_model=ReadyOut,
    summary="Readiness",
    responses={
        503: {
            "model": ReadyOut,
            "description": "A dependency did not answer: the report, with `error` in the shape of every error.",
        }
    },
)
def ready(settings: SettingsDep, state: StateDep) -> JSONResponse:
    """200 when the database answers `select 1` and each configured SQS queue and the S3 bucket answer;
    503 naming the failed checks otherwise (error types only: messages may carry hosts and credentials)."""
    checks: dict[str, str] = {}

    def check(name: str, probe: Callable[[], object]) -> None:
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:
            log.warning("readiness check %s failed: %s", name, exc)
            checks[name] = f"failed: {type(exc).__name__}"

    def database() -> None:
        with state.ctx.sessions() as s:
            s.execute(text("select 1"))

    check("database", database)
    sqs, s3 = state.sqs_probe, state.s3_probe
    if sqs is not None:
        for name, url in (("cpu", settings.SQS_QUEUE_URL), ("gpu", settings.SQS_GPU_QUEUE_URL)):
            if url:
                check(f"sqs:{name}", partial(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["QueueArn"]))
    if s3 is not None and settings.S3_BUCKET:
        check("s3", partial(s3.head_bucket, Bucket=settings.S3_BUCKET))
    failed = [name for name, result in checks.items() if result != "ok"]
    body = ReadyOut(status="unavailable" if failed else "ok", checks=checks, failed=failed, error=_not_ready(checks))
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status.HTTP_503_SERVICE_UNAVAILABLE if failed else 200
    )


def _not_ready(checks: dict[str, str]) -> ErrorInfo | None:
    failed = [name for name, result in checks.items() if result != "ok"]
    if not failed:
        return None
    return ErrorInfo(
        code="NotReady",
        message=f"not ready: {', '.join(failed)} did not answer",
        details=[ErrorDetail(loc=[name], message=checks[name], type="check_failed") for name in failed],
    )
