"""Timeline and job edits (reorder, trim, transitions, exclusions, room labels, hero swaps, music,
target length). What each edit re-runs is decided by `app.services.edits`; this route only applies it
and sends the re-run it staged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, status
from fastapi.exceptions import RequestValidationError

from app.api.deps import ContextDep, DispatcherDep, JobId, RedactDep, UserIdDep
from app.api.errors import redact_summary
from app.api.schemas import EditResult, JobSummary, edit_problems, error_responses
from app.db.session import session_scope
from app.orchestrator import job_summary
from app.services.edits import EditPayload, apply_edit

router = APIRouter(prefix="/jobs", tags=["edits"])


@router.post(
    "/{job_id}/edits",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EditResult,
    summary="Edit a job or its timeline",
    responses=error_responses(
        400,
        404,
        409,
        413,
        422,
        s409="The job is busy or not far enough along.",
        s422="The edit cannot be applied (unknown clip, not a permutation, trim too short, ...).",
    ),
)
def post_edit(
    job_id: JobId,
    edit: Annotated[EditPayload, Body()],
    ctx: ContextDep,
    dispatcher: DispatcherDep,
    redact: RedactDep,
    x_user_id: UserIdDep = None,
) -> EditResult:
    """Record the edit, invalidate what it changes and queue the re-run (202: the new video comes later;
    poll the job or wait for the callback). A timeline-only edit re-runs phase 4 alone."""
    problems = edit_problems(edit)
    if problems:
        raise RequestValidationError(problems)
    outcome = apply_edit(ctx, job_id, edit, user_id=x_user_id)
    # The summary as the edit committed it, before the re-run is sent and may start changing it.
    with session_scope(ctx.sessions) as s:
        summary = job_summary(s, job_id)
    dispatcher.flush()
    return EditResult(
        edit_id=outcome.edit_id,
        edit_type=outcome.edit_type,
        rerun_from=outcome.rerun_from,
        timeline_version=outcome.timeline_version,
        rerender_clip_ids=list(outcome.rerender_clip_ids or []),
        job=JobSummary.model_validate(redact_summary(summary, redact)),
    )
