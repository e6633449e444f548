"""Request and response bodies of the API, apart from the database models: the wire contract with Rails
changes only on purpose, never because a column was added."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator

# --- common -----------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    """Every error the service explains: one line, and the error's class for programs."""

    detail: str = Field(examples=["job 42 does not exist"])
    error: str | None = Field(default=None, examples=["JobNotFoundError"])


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    status: Literal["ok", "unavailable"]
    #: "ok" or "failed: <ErrorType>" per dependency.
    checks: dict[str, str] = Field(examples=[{"database": "ok", "sqs:cpu": "ok", "s3": "ok"}])
    failed: list[str] = Field(default_factory=list, examples=[[]])


# --- jobs -------------------------------------------------------------------------------------


class PhotoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: str = Field(
        min_length=1,
        max_length=2048,
        description="s3://<configured bucket>/key, or a path / "
        "file:// URI under LOCAL_STORAGE_PATH. Referenced in place, never fetched over HTTP.",
        examples=["s3://picaivid-uploads/listings/123/front.jpg"],
    )
    room_label: str | None = Field(
        default=None, max_length=64, description="Wins over inference.", examples=["kitchen"]
    )
    exclude: bool = False
    metadata: dict[str, Any] | None = Field(default=None, description="Stored as photos.manual_metadata.")


class JobCreate(BaseModel):
    # Unknown fields are errors: a misspelt "target_lenght" silently ignored would render the wrong video.
    # Rails sends listing ids as numbers; they are stored as strings.
    model_config = ConfigDict(
        extra="forbid",
        coerce_numbers_to_str=True,
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

    listing_id: str = Field(min_length=1, max_length=128)
    photos: list[PhotoIn] = Field(min_length=1, max_length=200)
    music_uri: str | None = Field(default=None, min_length=1, max_length=2048)
    template_type: str | None = Field(default=None, max_length=64)
    target_length: float | None = Field(default=None, ge=5, le=600, description="Seconds (default 30).")
    enable_beat_sync: bool | None = None
    metadata: dict[str, Any] | None = None
    callback_url: str | None = Field(
        default=None, max_length=2048, description="Progress events are POSTed here instead of BACKEND_URL."
    )
    enqueue: bool = Field(default=True, description="Start the job now (false: only register it).")

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


class ClipOut(BaseModel):
    id: int
    photo_id: int | None = None
    status: str = Field(examples=["rendered"])
    renderer: str | None = Field(default=None, description="clips.model_used", examples=["kenburns"])
    motion_type: str | None = None
    is_hero: bool = False
    duration: float | None = None
    validation_score: float | None = None
    render_seconds: float | None = None
    render_attempts: int = 0
    error: str | None = None


class Artifacts(BaseModel):
    """Download URLs (pre-signed for S3, valid for an hour); null until phase 3/4 produced them."""

    video: str | None = None
    poster: str | None = None
    storyboard: str | None = None


class JobDetail(JobSummary):
    photos: list[PhotoOut] = Field(default_factory=list)
    clips: list[ClipOut] = Field(default_factory=list)
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
