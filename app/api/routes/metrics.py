"""Prometheus scrape endpoint for the fleet (job states, phase and render timings, queue depth, backlog
per worker for autoscaling). Behind the API key like every /internal route: Prometheus sends it as a
header (`authorization` / `http_headers` in its scrape config)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import StateDep
from app.services.metrics import CONTENT_TYPE_LATEST, render_metrics

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}},
)
def metrics(state: StateDep) -> Response:
    """Read from the database and SQS at scrape time. An unreachable queue drops its series and reports
    `picaivid_queue_up{queue} 0` instead of failing the scrape."""
    return Response(content=render_metrics(state.metrics), media_type=CONTENT_TYPE_LATEST)
