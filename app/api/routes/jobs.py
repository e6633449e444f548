"""Jobs: create from URIs, list, inspect, timeline, re-run."""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select

from app.api.deps import ContextDep, DispatcherDep, JobId, RedactDep, SessionDep
from app.api.errors import PathRedactor, redact_summary
from app.api.schemas import (
    DB_INT_MAX,
    Artifacts,
    BeatGridOut,
    ClipOut,
    DeliverableOut,
    JobCreate,
    JobCreated,
    JobDetail,
    JobList,
    JobSummary,
    PhotoOut,
    PhotoScores,
    RenderAttemptOut,
    RunRequest,
    TimelineClipOut,
    TimelineOut,
    TimelineVersionOut,
    error_responses,
)
from app.db.models import Clip, ClipStatus, Deliverable, Job, JobStatus, Photo, Timeline
from app.db.session import session_scope
from app.errors import PicaividError
from app.media.deliverables import DeliverableSpec, ListingFacts
from app.netguard import check_callback_url
from app.orchestrator import get_job, job_summary
from app.services.analysis import photo_entries
from app.services.jobs import PhotoRef, create_job_from_uris
from app.services.reports import GENERATIVE_RENDERERS
from app.services.runs import request_run
from app.storage import Storage

log = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"])

NOT_FOUND: dict[int | str, dict[str, Any]] = error_responses(404, 422, s422="The id is not a job id (1 .. 2^31-1).")


def artifact_url(storage: Storage, uri: str | None) -> str | None:
    """A download URL for a stored artifact (pre-signed for S3). A URI the current storage cannot
    resolve (configuration changed since it was written) yields null rather than failing the request."""
    if not uri:
        return None
    try:
        return storage.url_for(storage.resolve_key(uri))
    except PicaividError as exc:
        log.warning("no URL for %s: %s", uri, exc)
        return None


def encode_cursor(job_id: int) -> str:
    return base64.urlsafe_b64encode(str(job_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The cursor is opaque to clients (it may carry more than an id one day); today it is the last id.
    Anything that is not a cursor this API wrote (not base64, not digits, beyond the id column) is a
    422 on `cursor`, like any other invalid query parameter."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not (raw.isdigit() and len(raw) <= len(str(DB_INT_MAX)) and 1 <= int(raw) <= DB_INT_MAX):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "cursor"),
                    "msg": "invalid cursor: pass the next_cursor of the previous page",
                    "input": cursor,
                }
            ]
        )
    return int(raw)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobCreated,
    summary="Create a job",
    responses=error_responses(
        400,
        413,
        422,
        503,
        s422="An input URI, the music or a field is unusable.",
        s503="Storage or the database did not answer.",
    ),
)
def create_job(body: JobCreate, ctx: ContextDep, dispatcher: DispatcherDep) -> JobCreated:
    """Register a job whose photos and music already sit in storage (the configured S3 bucket, or under
    LOCAL_STORAGE_PATH). Every URI must exist; the music is decoded before anything is written. With
    `enqueue` the job is queued in the same transaction and sent after commit."""
    if body.callback_url is not None:
        check_callback_url(body.callback_url, ctx.settings)  # SSRF: resolved and checked (422 if refused)
    photos = [
        PhotoRef(uri=p.uri, room_label=p.room_label, exclude=p.exclude, manual_metadata=p.metadata) for p in body.photos
    ]
    job_id = create_job_from_uris(
        ctx,
        listing_id=body.listing_id,
        photos=photos,
        music_uri=body.music_uri,
        target_length=body.target_length,
        enable_beat_sync=body.enable_beat_sync,
        template_type=body.template_type,
        metadata=body.metadata,
        callback_url=body.callback_url,
        enqueue=body.enqueue,
        deliverables=[DeliverableSpec(**d.model_dump()) for d in body.deliverables],
        listing_facts=ListingFacts.from_dict(body.listing.model_dump(exclude_none=True)) if body.listing else None,
        voiceover_uri=body.voiceover_uri,
    )
    if body.enqueue:
        dispatcher.flush()
    with session_scope(ctx.sessions) as s:
        job_status = get_job(s, job_id).status
    return JobCreated(job_id=job_id, status=job_status, enqueued=body.enqueue)


@router.get(
    "",
    response_model=JobList,
    summary="List jobs",
    responses=error_responses(422, s422="Invalid status, limit or cursor."),
)
def list_jobs(
    session: SessionDep,
    redact: RedactDep,
    status_filter: JobStatus | None = Query(default=None, alias="status"),
    limit: int = Query(default=20, ge=1, le=100),
    cursor: str | None = Query(default=None, max_length=64, description="`next_cursor` of the previous page."),
) -> JobList:
    """Newest first. Keyset pagination on the id, so pages stay stable while jobs are being created."""
    stmt = select(Job.id).order_by(Job.id.desc()).limit(limit + 1)
    if status_filter is not None:
        stmt = stmt.where(Job.status == status_filter.value)
    if cursor:
        stmt = stmt.where(Job.id < decode_cursor(cursor))
    ids = list(session.scalars(stmt))
    more = len(ids) > limit
    ids = ids[:limit]
    items = [JobSummary.model_validate(redact_summary(job_summary(session, job_id), redact)) for job_id in ids]
    return JobList(items=items, next_cursor=encode_cursor(ids[-1]) if more and ids else None)


@router.get("/{job_id}", response_model=JobDetail, summary="Job status", responses=NOT_FOUND)
def read_job(job_id: JobId, session: SessionDep, ctx: ContextDep, redact: RedactDep) -> JobDetail:
    """The job's state, its photos (with scores and why any was rejected), its clips and download URLs of
    the delivered video, poster and storyboard."""
    summary = redact_summary(job_summary(session, job_id), redact)
    photos = list(session.scalars(select(Photo).where(Photo.job_id == job_id).order_by(Photo.position, Photo.id)))
    analysed = {entry["photo_id"]: entry for entry in photo_entries(session, job_id)}
    deliverables = list(
        session.scalars(select(Deliverable).where(Deliverable.job_id == job_id).order_by(Deliverable.id))
    )
    clips = list(session.scalars(select(Clip).where(Clip.job_id == job_id).order_by(Clip.id)))
    return JobDetail(
        **summary,
        photos=[_photo_out(p, analysed.get(p.id, {}), redact) for p in photos],
        clips=[_clip_out(c, redact) for c in clips],
        deliverables=[_deliverable_out(d, ctx.storage) for d in deliverables],
        ai_generated_clips=[c.id for c in clips if _generative(c)],
        artifacts=Artifacts(
            video=artifact_url(ctx.storage, summary["output_uri"]),
            poster=artifact_url(ctx.storage, summary["poster_uri"]),
            storyboard=artifact_url(ctx.storage, summary["storyboard_uri"]),
        ),
    )


def _deliverable_out(d: Deliverable, storage: Storage) -> DeliverableOut:
    return DeliverableOut(
        key=d.key,
        format=d.format,
        variant=d.variant,
        status=d.status,
        timeline_version=d.timeline_version,
        width=d.width,
        height=d.height,
        duration=d.duration,
        target_lufs=d.target_lufs,
        integrated_lufs=d.integrated_lufs,
        true_peak_dbtp=d.true_peak_dbtp,
        url=artifact_url(storage, d.uri),
        captions_vtt_url=artifact_url(storage, d.captions_vtt_uri),
        captions_srt_url=artifact_url(storage, d.captions_srt_uri),
        compliance=d.compliance or {},
    )


def _photo_out(p: Photo, entry: dict[str, Any], redact: PathRedactor) -> PhotoOut:
    return PhotoOut(
        id=p.id,
        uri=p.s3_uri,
        status=p.status,
        reject_reason=redact(p.reject_reason) if p.reject_reason else None,
        resolved_room_label=p.resolved_room_label,
        label_source=p.label_source,
        exclude=bool(p.exclude),
        scores=PhotoScores(
            sharpness=p.sharpness,
            exposure_score=p.exposure_score,
            composition_score=p.composition_score,
            base_score=p.base_score,
            final_score=p.final_score,
        ),
        is_exterior=p.is_exterior,
        exterior_probability=entry.get("exterior_probability"),
        room_label_confidence=entry.get("room_label_confidence"),
        classified_room=entry.get("classified_room"),
        scene_source=entry.get("scene_source"),
        cluster=entry.get("cluster"),
        hero=bool(entry.get("hero")),
        text_regions=list(entry.get("text_regions") or []),
        depth_source=entry.get("depth_source"),
    )


def _generative(clip: Clip) -> bool:
    """Whether a generative model made this clip's current render (disclosure)."""
    return clip.status == ClipStatus.RENDERED and clip.model_used in GENERATIVE_RENDERERS


def _attempts(clip: Clip, redact: PathRedactor) -> list[RenderAttemptOut]:
    """`clips.render_log` as the API shows it; reasons are redacted like errors (they may quote one)."""
    attempts = []
    for entry in clip.render_log or []:
        if not isinstance(entry, dict):
            continue
        reasons = entry.get("reasons") or ([entry["reason"]] if entry.get("reason") else [])
        attempts.append(
            RenderAttemptOut(
                renderer=str(entry["renderer"]) if entry.get("renderer") else None,
                passed=bool(entry.get("passed", entry.get("ok", False))),
                reasons=[redact(str(r)) for r in reasons] if isinstance(reasons, list) else [],
            )
        )
    return attempts


def _clip_out(c: Clip, redact: PathRedactor) -> ClipOut:
    return ClipOut(
        id=c.id,
        photo_id=c.photo_id,
        status=c.status,
        renderer=c.model_used,
        motion_type=c.motion_type,
        is_hero=bool(c.is_hero),
        duration=c.duration,
        validation_score=c.validation_score,
        render_seconds=c.render_seconds,
        render_attempts=c.render_attempts or 0,
        error=redact(c.error) if c.error else None,
        attempts=_attempts(c, redact),
        generative=_generative(c),
    )


def _beat_grid(timeline: Timeline) -> BeatGridOut | None:
    """The stored grid (track time) shifted to video time and cut to the video's length, the frame the
    clips' start/end times are in."""
    grid = timeline.beat_grid
    if not grid or "tempo" not in grid:
        return None
    offset = timeline.music_offset or 0.0
    total = timeline.total_duration
    eps = 1e-6

    def window(times: list[float]) -> list[float]:
        shifted = (float(t) - offset for t in times)
        return [round(t, 4) for t in shifted if t >= -eps and (total is None or t <= total + eps)]

    beats = window(list(grid.get("beats") or []))
    downbeats = window(list(grid.get("downbeats") or []))
    return BeatGridOut(
        tempo=float(grid["tempo"]),
        source=grid.get("source"),
        meter=grid.get("meter"),
        beats_per_bar=grid.get("beats_per_bar"),
        warnings=[str(w) for w in grid.get("warnings") or []],
        confidence=grid.get("confidence"),
        beats_count=len(beats),
        downbeats_count=len(downbeats),
        beats=beats,
        downbeats=downbeats,
    )


@router.get(
    "/{job_id}/timeline",
    response_model=TimelineOut,
    summary="Current timeline",
    responses={**NOT_FOUND, **error_responses(404, s404="No such job, or no timeline yet.")},
)
def read_timeline(job_id: JobId, session: SessionDep, ctx: ContextDep) -> TimelineOut:
    """The latest timeline version (clips in order, cut times on the beat grid) and the list of every
    version with its video."""
    get_job(session, job_id)
    versions = list(session.scalars(select(Timeline).where(Timeline.job_id == job_id).order_by(Timeline.version)))
    if not versions:
        raise HTTPException(status_code=404, detail=f"job {job_id} has no timeline yet")
    current = versions[-1]
    clip_photo = {
        clip_id: photo_id
        for clip_id, photo_id in session.execute(select(Clip.id, Clip.photo_id).where(Clip.job_id == job_id))
    }
    return TimelineOut(
        job_id=job_id,
        version=current.version,
        status=current.status,
        source=current.source,
        total_duration=current.total_duration,
        target_length=current.target_length,
        music_offset=current.music_offset,
        beat_grid=_beat_grid(current),
        clips=[
            TimelineClipOut(
                order_index=tc.order_index,
                clip_id=tc.clip_id,
                photo_id=clip_photo.get(tc.clip_id) if tc.clip_id is not None else None,
                start_time=tc.start_time,
                end_time=tc.end_time,
                in_time=tc.in_time,
                out_time=tc.out_time,
                beats=tc.beats,
                transition_type=tc.transition_type,
                transition_duration=tc.transition_duration,
            )
            for tc in current.clips
        ],
        versions=[
            TimelineVersionOut(
                version=v.version,
                status=v.status,
                source=v.source,
                created_at=v.created_at,
                total_duration=v.total_duration,
                output_url=artifact_url(ctx.storage, v.output_uri),
            )
            for v in versions
        ],
    )


@router.post(
    "/{job_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobSummary,
    summary="Run or re-run a job",
    responses={**NOT_FOUND, **error_responses(400, 409, 413)},
)
def rerun(job_id: JobId, body: RunRequest, ctx: ContextDep, dispatcher: DispatcherDep, redact: RedactDep) -> JobSummary:
    """Re-run from `start_phase` (that phase and later ones are redone; earlier results and rendered
    clips are kept), or resume without it. Refused while a worker is on the job."""
    reason = f"api: run from phase {body.start_phase}" if body.start_phase else "api: resume"
    summary = request_run(ctx, job_id, body.start_phase, reason=reason)
    dispatcher.flush()
    return JobSummary.model_validate(redact_summary(summary, redact))
