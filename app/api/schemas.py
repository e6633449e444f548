"""Request and response bodies of the API, apart from the database models: the wire contract with Rails
changes only on purpose, never because a column was added.

Limits on what a request may carry (besides API_MAX_BODY_BYTES on the whole body) sit here, next to the
fields they bound: ids fit the database's 32-bit integer columns, strings fit their columns and carry no
NUL (PostgreSQL text cannot hold one) and no lone surrogate (not UTF-8), numbers are finite, metadata is
a small, shallow JSON object.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

# --- limits -----------------------------------------------------------------------------------

#: Largest id any table holds: ids are 32-bit `integer` columns on PostgreSQL (SQLite takes more, but
#: both databases answer the same).
DB_INT_MAX = 2**31 - 1
MAX_URI_CHARS = 2048
MAX_PHOTOS = 200
#: One metadata object (the job's or one photo's), as compact JSON.
MAX_METADATA_BYTES = 16_384
MAX_METADATA_DEPTH = 8
#: Integers inside metadata: what a signed 64-bit column or a JavaScript number can still carry exactly.
MAX_METADATA_INT = 2**53


def storable_problem(text: str) -> str | None:
    """Why `text` cannot be stored as a text column on both databases, or None."""
    if "\x00" in text:
        return "must not contain NUL characters (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates such as \\ud800)"
    return None


def _storable(text: str) -> str:
    problem = storable_problem(text)
    if problem:
        raise ValueError(problem)
    return text


#: A string that both databases store as sent.
Text = Annotated[str, AfterValidator(_storable)]


def _json_problem(value: Any, depth: int) -> str | None:
    """Why `value` (decoded JSON) cannot be stored and sent back as JSON, or None."""
    if depth > MAX_METADATA_DEPTH:
        return f"is nested deeper than {MAX_METADATA_DEPTH} levels"
    if isinstance(value, float) and not math.isfinite(value):
        return "must not contain NaN or Infinity"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_METADATA_INT:
        return "must not contain integers beyond +/-2^53"
    if isinstance(value, str):
        return storable_problem(value)
    if isinstance(value, dict):
        items: list[Any] = [*value.keys(), *value.values()]
        return next((p for p in (_json_problem(v, depth + 1) for v in items) if p), None)
    if isinstance(value, list):
        return next((p for p in (_json_problem(v, depth + 1) for v in value) if p), None)
    return None


def _small_json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    problem = _json_problem(value, 1)
    if problem:
        raise ValueError(f"metadata {problem}")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes as JSON; at most {MAX_METADATA_BYTES} are allowed")
    return value


#: Free-form metadata stored as a JSON column.
Metadata = Annotated[dict[str, Any] | None, AfterValidator(_small_json)]


#: Longest list an edit may carry (reorder's clip_ids: a timeline has one clip per photo at most).
MAX_EDIT_ITEMS = 1000


def _edit_value_problem(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and not -DB_INT_MAX - 1 <= value <= DB_INT_MAX:
        return f"must be between {-DB_INT_MAX - 1} and {DB_INT_MAX}"
    if isinstance(value, str):
        if len(value) > MAX_URI_CHARS:
            return f"must have at most {MAX_URI_CHARS} characters"
        return storable_problem(value)
    return None


def edit_problems(edit: BaseModel) -> list[dict[str, Any]]:
    """Validation errors (pydantic's shape, for `RequestValidationError`) for values an edit's own model
    accepts but the database cannot hold: ids beyond its integer columns, NUL characters, strings longer
    than any column, lists longer than any timeline. Empty when the edit is storable."""
    errors: list[dict[str, Any]] = []
    for name, value in edit.model_dump().items():
        if isinstance(value, list) and len(value) > MAX_EDIT_ITEMS:
            errors.append(_value_error(("body", name), f"must have at most {MAX_EDIT_ITEMS} items", value))
            continue
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            problem = _edit_value_problem(item)
            if problem:
                loc = ("body", name) if index is None else ("body", name, index)
                errors.append(_value_error(loc, problem, item))
    return errors


def _value_error(loc: tuple[str | int, ...], message: str, value: Any) -> dict[str, Any]:
    return {"type": "value_error", "loc": loc, "msg": message, "input": value}


# --- errors -----------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """One problem with the request (validation errors list each field)."""

    model_config = ConfigDict(extra="forbid")

    loc: list[str | int] = Field(default_factory=list, examples=[["body", "target_length"]])
    message: str = Field(examples=["Input should be less than or equal to 600"])
    type: str | None = Field(default=None, examples=["less_than_equal"])
    input: Any = Field(
        default=None,
        description="The offending value, shortened: long strings are cut, arrays and objects summarised, "
        "NaN and Infinity given as strings. Absent where it would only repeat the request.",
        examples=[900],
    )


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        description="For programs: the error's class (JobNotFoundError, InvalidInputError, JobBusyError, ...) "
        "or the HTTP meaning (Unauthorized, NotFound, ValidationError, PayloadTooLarge, InternalError, ...).",
        examples=["JobNotFoundError"],
    )
    message: str = Field(description="One line for people.", examples=["job 42 does not exist"])
    details: list[ErrorDetail] = Field(default_factory=list, description="At most 20 entries.")


class ErrorOut(BaseModel):
    """Every error response of the service, whatever its status: `{"error": {"code", "message", "details"}}`."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorInfo


#: What each documented error status means, for `error_responses`.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be parsed (not UTF-8, or numbers beyond what JSON decoding allows).",
    401: "Missing or invalid X-API-Key.",
    404: "No such job.",
    409: "The job is busy, or an earlier phase has not completed.",
    413: "The request body is larger than API_MAX_BODY_BYTES.",
    422: "A field, an id or a query parameter is invalid.",
    500: "A bug: the message says nothing more (details are in the log).",
    503: "The database or storage did not answer.",
}


def error_responses(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, all with the `ErrorOut` body. `described` overrides a
    description: `error_responses(404, s404="No such job, or no timeline yet.")`."""
    return {
        code: {"model": ErrorOut, "description": described.get(f"s{code}", ERROR_DESCRIPTIONS[code])} for code in codes
    }


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    status: Literal["ok", "unavailable"]
    #: "ok" or "failed: <ErrorType>" per dependency.
    checks: dict[str, str] = Field(examples=[{"database": "ok", "sqs:cpu": "ok", "s3": "ok"}])
    failed: list[str] = Field(default_factory=list, examples=[[]])
    error: ErrorInfo | None = Field(
        default=None, description="With 503 only: the failed checks in the shape of every other error."
    )


# --- jobs -------------------------------------------------------------------------------------


class PhotoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: Text = Field(
        min_length=1,
        max_length=MAX_URI_CHARS,
        description="s3://<configured bucket>/key, or a path / "
        "file:// URI under LOCAL_STORAGE_PATH. Referenced in place, never fetched over HTTP.",
        examples=["s3://picaivid-uploads/listings/123/front.jpg"],
    )
    room_label: Text | None = Field(
        default=None, max_length=64, description="Wins over inference.", examples=["kitchen"]
    )
    exclude: bool = False
    metadata: Metadata = Field(
        default=None,
        description=f"Stored as photos.manual_metadata (a JSON object of at most {MAX_METADATA_BYTES} bytes, "
        f"{MAX_METADATA_DEPTH} levels deep).",
    )


class DeliverableIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    format: Literal["16:9", "9:16", "1:1", "4:5"] = Field(default="16:9", description="1920x1080, 1080x1920, ...")
    variant: Literal["branded", "unbranded"] = Field(
        default="branded", description="unbranded: the MLS cut, no agent identity, text in photos blurred."
    )
    lufs: float = Field(default=-14.0, ge=-31, le=-9, description="Integrated loudness target (EBU R128).")
    captions: Literal["auto", "burned", "sidecar"] = "auto"


class ListingFactsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, coerce_numbers_to_str=False)

    address: Text | None = Field(default=None, max_length=200, examples=["42 Maple Street, Springfield"])
    price: Text | None = Field(default=None, max_length=40, examples=["$525,000"])
    beds: float | None = Field(default=None, ge=0, le=1000)
    baths: float | None = Field(default=None, ge=0, le=1000)
    sqft: int | None = Field(default=None, ge=0, le=10_000_000)
    headline: Text | None = Field(default=None, max_length=120)
    agent_name: Text | None = Field(default=None, max_length=120)
    agent_phone: Text | None = Field(default=None, max_length=40)
    agent_email: Text | None = Field(default=None, max_length=200)
    brokerage: Text | None = Field(default=None, max_length=120)
    logo_uri: Text | None = Field(default=None, max_length=MAX_URI_CHARS, description="Logo image in storage.")


class DeliverableOut(BaseModel):
    key: str = Field(examples=["9x16-branded"])
    format: str = Field(examples=["9:16"])
    variant: str = Field(examples=["branded"])
    status: str = Field(examples=["delivered"])
    timeline_version: int | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    target_lufs: float | None = None
    integrated_lufs: float | None = None
    true_peak_dbtp: float | None = None
    url: str | None = Field(default=None, description="Pre-signed download URL (S3) valid for an hour.")
    captions_vtt_url: str | None = None
    captions_srt_url: str | None = None
    compliance: dict[str, Any] = Field(
        default_factory=dict,
        description="Agent identity in overlays / in OCR of frames, text redacted, opening shot, AI clips, passed.",
    )


class JobCreate(BaseModel):
    # Unknown fields are errors: a misspelt "target_lenght" silently ignored would render the wrong video.
    # Rails sends listing ids as numbers; they are stored as strings.
    model_config = ConfigDict(
        extra="forbid",
        coerce_numbers_to_str=True,
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "listing_id": "123",
                    "photos": [
                        {"uri": "s3://picaivid-uploads/listings/123/front.jpg", "room_label": "exterior"},
                        {"uri": "s3://picaivid-uploads/listings/123/kitchen.jpg"},
                    ],
                    "music_uri": "s3://picaivid-uploads/music/upbeat.mp3",
                    "target_length": 30,
                    "callback_url": "https://app.example.com/internal/picaivid/events",
                    "enqueue": True,
                }
            ]
        },
    )

    listing_id: Text = Field(min_length=1, max_length=128)
    photos: list[PhotoIn] = Field(min_length=1, max_length=MAX_PHOTOS)
    music_uri: Text | None = Field(default=None, min_length=1, max_length=MAX_URI_CHARS)
    template_type: Text | None = Field(default=None, max_length=64)
    target_length: float | None = Field(default=None, ge=5, le=600, description="Seconds (default 30).")
    enable_beat_sync: bool | None = None
    metadata: Metadata = Field(
        default=None,
        description=f"Stored as the job's metadata (a JSON object of at most {MAX_METADATA_BYTES} bytes, "
        f"{MAX_METADATA_DEPTH} levels deep).",
    )
    callback_url: Text | None = Field(
        default=None,
        max_length=MAX_URI_CHARS,
        description="Progress events are POSTed here instead of BACKEND_URL.",
    )
    enqueue: bool = Field(default=True, description="Start the job now (false: only register it).")
    deliverables: list[DeliverableIn] = Field(
        default_factory=list,
        max_length=16,
        description="The cuts to deliver (format x variant x loudness); empty: one branded cut at OUTPUT_RESOLUTION.",
    )
    listing: ListingFactsIn | None = Field(default=None, description="What the branded cuts show.")
    voiceover_uri: Text | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URI_CHARS,
        description="A voice-over track in storage: transcribed to captions, music ducked under it.",
    )

    @field_validator("listing_id", mode="before")
    @classmethod
    def _finite_id(cls, value: Any) -> Any:
        # Numbers become strings (coerce_numbers_to_str); NaN and Infinity would become "nan" and "inf".
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a string or a finite number")
        return value

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError("must be an http:// or https:// URL")
        return value


class JobCreated(BaseModel):
    job_id: int = Field(examples=[42])
    status: str = Field(examples=["pending"])
    enqueued: bool = Field(examples=[True])


class PhaseOut(BaseModel):
    phase: int = Field(examples=[1])
    name: str = Field(examples=["analyze"])
    status: str = Field(examples=["completed"])
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    error: str | None = None


class JobSummary(BaseModel):
    """The job's state (the same view as `picaivid status --json`)."""

    job_id: int = Field(examples=[42])
    listing_id: str = Field(examples=["123"])
    status: str = Field(examples=["running"])
    current_phase: int = Field(examples=[2])
    error: str | None = None
    generation: int = 1
    output_uri: str | None = None
    poster_uri: str | None = None
    storyboard_uri: str | None = None
    bpm: float | None = None
    beat_offset: float | None = None
    warnings: list[Any] = Field(default_factory=list)
    phases: list[PhaseOut] = Field(default_factory=list)


class PhotoScores(BaseModel):
    sharpness: float | None = None
    exposure_score: float | None = None
    composition_score: float | None = None
    base_score: float | None = None
    final_score: float | None = None


class PhotoOut(BaseModel):
    id: int
    uri: str
    status: str | None = Field(default=None, description="ok | rejected (null before phase 1).")
    reject_reason: str | None = None
    resolved_room_label: str | None = None
    label_source: str | None = None
    exclude: bool = False
    scores: PhotoScores
    is_exterior: bool | None = None
    exterior_probability: float | None = Field(
        default=None, description="The classifier's probability that the photo is an exterior (null before phase 1)."
    )
    room_label_confidence: float | None = Field(
        default=None,
        description="1.0 for a label a person gave (backend, folder, edit); the classifier's confidence otherwise. "
        'A classified label below 0.5 is "unknown".',
    )
    classified_room: str | None = Field(
        default=None, description="What the classifier (CLIP or heuristic) says, even where a given label won."
    )
    scene_source: str | None = Field(default=None, examples=["heuristic:v2"])
    cluster: int | None = Field(default=None, description="Index of the photo's room cluster (same room, same index).")
    hero: bool = Field(default=False, description="The best photo of its room, the one its clip is made from.")
    text_regions: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Text and logos found in the photo (watermarks, banners, signs): normalised box, text, score.",
    )
    depth_source: str | None = None


class RenderAttemptOut(BaseModel):
    """One rung of the renderer ladder tried for a clip (`clips.render_log`), in the order tried."""

    renderer: str | None = Field(
        default=None, description="The renderer tried: ltx2, parallax or ken_burns.", examples=["parallax"]
    )
    passed: bool = Field(
        default=False,
        description="Whether its output passed the validator (the last attempt of a rendered clip is the one that "
        "passed; every earlier one stepped the clip down the ladder).",
    )
    reasons: list[str] = Field(
        default_factory=list,
        description="Why it was declined, failed or rejected by the validator (empty when it passed).",
        examples=[["no depth map for this photo"]],
    )


class ClipOut(BaseModel):
    id: int
    photo_id: int | None = None
    status: str = Field(examples=["rendered"])
    renderer: str | None = Field(
        default=None, description="The renderer that made the clip (clips.model_used).", examples=["ken_burns"]
    )
    motion_type: str | None = None
    is_hero: bool = False
    duration: float | None = None
    validation_score: float | None = None
    render_seconds: float | None = None
    render_attempts: int = Field(default=0, description="How many times the clip was rendered (not ladder rungs).")
    error: str | None = None
    attempts: list[RenderAttemptOut] = Field(
        default_factory=list,
        description="Every renderer tried in the clip's latest render, best first, with why each that did not pass "
        "was stepped down from.",
    )
    generative: bool = Field(
        default=False,
        description="True when a generative model (LTX-2) made the clip: AI-generated listing media that may need "
        "disclosure (MLS rules, California AB 723). Parallax and Ken Burns clips move the photo's own pixels.",
    )


class Artifacts(BaseModel):
    """Download URLs (pre-signed for S3, valid for an hour); null until phase 3/4 produced them."""

    video: str | None = None
    poster: str | None = None
    storyboard: str | None = None


class JobDetail(JobSummary):
    photos: list[PhotoOut] = Field(default_factory=list)
    deliverables: list[DeliverableOut] = Field(default_factory=list)
    clips: list[ClipOut] = Field(default_factory=list)
    ai_generated_clips: list[int] = Field(
        default_factory=list,
        description="Ids of the rendered clips a generative model made (`clips[].generative`), for disclosure of "
        "AI-generated listing media (MLS rules, California AB 723); empty when every clip moves the photos' own "
        "pixels.",
        examples=[[]],
    )
    artifacts: Artifacts = Field(default_factory=Artifacts)


class JobList(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next (older) page; null on the last page."
    )


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"start_phase": 3}]})

    start_phase: int | None = Field(
        default=None,
        ge=1,
        le=4,
        description="Re-run from this phase (earlier phases must be completed); null resumes where the job stopped.",
    )


# --- timeline ---------------------------------------------------------------------------------


class BeatGridOut(BaseModel):
    """The music's beat grid as the video uses it. Times are in video time (seconds from the start of
    the video); add `music_offset` for the time in the track."""

    tempo: float = Field(examples=[112.0])
    source: str | None = Field(default=None, examples=["librosa"])
    confidence: float | None = None
    meter: str | None = Field(default=None, examples=["4/4"])
    beats_per_bar: int | None = None
    warnings: list[str] = Field(default_factory=list)
    beats_count: int
    downbeats_count: int
    beats: list[float]
    downbeats: list[float]


class TimelineClipOut(BaseModel):
    order_index: int
    clip_id: int | None = None
    photo_id: int | None = None
    start_time: float | None = None
    end_time: float | None = None
    in_time: float | None = None
    out_time: float | None = None
    beats: int | None = None
    transition_type: str | None = None
    transition_duration: float | None = None


class TimelineVersionOut(BaseModel):
    version: int
    status: str
    source: str | None = None
    created_at: datetime | None = None
    total_duration: float | None = None
    output_url: str | None = None


class TimelineOut(BaseModel):
    job_id: int
    version: int
    status: str
    source: str | None = Field(default=None, description='"phase3" or "edit:<type>".')
    total_duration: float | None = None
    target_length: float | None = None
    music_offset: float | None = Field(default=None, description="Track time that plays at video time 0.")
    beat_grid: BeatGridOut | None = None
    clips: list[TimelineClipOut]
    versions: list[TimelineVersionOut]


# --- edits ------------------------------------------------------------------------------------


class EditResult(BaseModel):
    edit_id: int = Field(examples=[7])
    edit_type: str = Field(examples=["reorder"])
    rerun_from: int | None = Field(
        default=None, description="The phase the job re-runs from (null: none).", examples=[4]
    )
    timeline_version: int | None = Field(default=None, examples=[2])
    rerender_clip_ids: list[int] = Field(default_factory=list)
    job: JobSummary
