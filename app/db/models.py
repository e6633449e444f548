"""SQLAlchemy 2.0 models: the eight tables the Rails backend expects (../shared/design/data-model.md),
plus `job_phases` (per-phase status, timings and errors).

Column names the backend knows are kept verbatim; everything added is documented as ours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class PhaseStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ClipStatus(StrEnum):
    PENDING = "pending"
    RENDERING = "rendering"
    RENDERED = "rendered"
    FAILED = "failed"


class PhotoStatus(StrEnum):
    OK = "ok"
    REJECTED = "rejected"


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    listing_id: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING, server_default="pending", index=True)
    current_phase: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    template_type: Mapped[str | None] = mapped_column(String(64))
    target_length: Mapped[float | None] = mapped_column(Float)
    music_uri: Mapped[str | None] = mapped_column(Text)
    bpm: Mapped[float | None] = mapped_column(Float)
    beat_offset: Mapped[float | None] = mapped_column(Float)
    enable_beat_sync: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    # --- ours ---
    #: Why the job failed, one line, user-facing.
    error: Mapped[str | None] = mapped_column(Text)
    #: Bumped by every explicit re-run so that a redelivered message of an older run is recognised.
    generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    output_uri: Mapped[str | None] = mapped_column(Text)
    poster_uri: Mapped[str | None] = mapped_column(Text)
    storyboard_uri: Mapped[str | None] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(Text)
    job_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict, server_default=text("'{}'"))
    #: Non-fatal findings: skipped photos, music shorter than the target, renderer downgrades.
    warnings: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    #: Fleet mode: which worker holds the job and until when (a lease, not a lock).
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The cuts to deliver (`app.media.deliverables.DeliverableSpec.to_dict()` each); empty: one cut in
    #: the format of OUTPUT_RESOLUTION, branded.
    deliverables: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    #: Address, price, beds/baths/sqft, headline, agent identity (`ListingFacts.to_dict()`).
    listing_facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    #: Optional voice-over track (transcribed to captions, music ducked under it).
    voiceover_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    photos: Mapped[list[Photo]] = relationship(
        back_populates="job", order_by="Photo.position", cascade="all, delete-orphan"
    )
    phases: Mapped[list[JobPhase]] = relationship(
        back_populates="job", order_by="JobPhase.phase", cascade="all, delete-orphan"
    )


class JobPhase(Base):
    """Ours: one row per (job, phase) with its status, timings and error."""

    __tablename__ = "job_phases"
    __table_args__ = (UniqueConstraint("job_id", "phase", name="uq_job_phases_job_phase"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True)
    phase: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=PhaseStatus.PENDING, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    #: The phase's summary (counts, models used, timings of its steps).
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    worker: Mapped[str | None] = mapped_column(String(128))

    job: Mapped[Job] = relationship(back_populates="phases")


class Photo(Base):
    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True)
    s3_uri: Mapped[str] = mapped_column(Text, nullable=False)
    #: The label the backend sent with the photo; it wins over inference.
    room_label: Mapped[str | None] = mapped_column(String(64))
    #: A user's edit of the label; wins over everything.
    room_override: Mapped[str | None] = mapped_column(String(64))
    exclude: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    manual_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sharpness: Mapped[float | None] = mapped_column(Float)
    exposure_score: Mapped[float | None] = mapped_column(Float)
    composition_score: Mapped[float | None] = mapped_column(Float)
    base_score: Mapped[float | None] = mapped_column(Float)
    final_score: Mapped[float | None] = mapped_column(Float)
    # --- ours ---
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    filename: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str | None] = mapped_column(String(16))
    reject_reason: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    tilt_degrees: Mapped[float | None] = mapped_column(Float)
    is_exterior: Mapped[bool | None] = mapped_column(Boolean)
    inferred_room_label: Mapped[str | None] = mapped_column(String(64))
    #: Which model or heuristic produced `resolved_room_label` ("backend", "override", "heuristic:v2").
    label_source: Mapped[str | None] = mapped_column(String(64))
    resolved_room_label: Mapped[str | None] = mapped_column(String(64))
    room_cluster_id: Mapped[int | None] = mapped_column(ForeignKey("room_clusters.id", ondelete="SET NULL"))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    #: Raw metrics and which model/heuristic produced each score.
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    job: Mapped[Job] = relationship(back_populates="photos")


class RoomCluster(Base):
    __tablename__ = "room_clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True)
    room_type: Mapped[str | None] = mapped_column(String(64))
    confidence_tier: Mapped[str | None] = mapped_column(String(16))  # low | medium | high
    sfm_eligible: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    image_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    overlap_score: Mapped[float | None] = mapped_column(Float)
    depth_variance: Mapped[float | None] = mapped_column(Float)
    # --- ours ---
    cluster_index: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    member_photo_ids: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default=text("'[]'"))


class AnalysisResult(Base):
    __tablename__ = "analysis_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True)
    room_cluster_id: Mapped[int | None] = mapped_column(ForeignKey("room_clusters.id", ondelete="CASCADE"))
    hero_photo_id: Mapped[int | None] = mapped_column(ForeignKey("photos.id", ondelete="SET NULL"))
    recommended_motion: Mapped[str | None] = mapped_column(String(32))
    allowed_motion_types: Mapped[list[Any] | None] = mapped_column(JSON)
    recommended_duration: Mapped[float | None] = mapped_column(Float)
    tier: Mapped[str | None] = mapped_column(String(16))
    model_recommendation: Mapped[str | None] = mapped_column(String(64))
    debug_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Clip(Base):
    __tablename__ = "clips"
    __table_args__ = (UniqueConstraint("job_id", "photo_id", name="uq_clips_job_photo"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True)
    room_cluster_id: Mapped[int | None] = mapped_column(ForeignKey("room_clusters.id", ondelete="SET NULL"))
    source_photo_ids: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    motion_type: Mapped[str | None] = mapped_column(String(32))
    model_used: Mapped[str | None] = mapped_column(String(64))
    is_3d: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    duration: Mapped[float | None] = mapped_column(Float)
    s3_uri: Mapped[str | None] = mapped_column(Text)
    validation_score: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default=ClipStatus.PENDING, server_default="pending")
    # --- ours ---
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    #: The full motion plan (viewports, easing, allowed motions); see app.media.types.MotionPlan.
    motion_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The camera plan per requested frame format ("9:16" -> plan dict), each framed for its aspect
    #: and safe area; `motion_plan` is the first deliverable's.
    format_plans: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    #: Hash of everything the rendered artifact depends on; a changed plan means a new render.
    render_key: Mapped[str | None] = mapped_column(String(64))
    tier: Mapped[str | None] = mapped_column(String(16))
    is_hero: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    render_seconds: Mapped[float | None] = mapped_column(Float)
    render_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Renderers tried, in order, with why each was downgraded.
    render_log: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rendered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Timeline(Base):
    __tablename__ = "timeline"
    __table_args__ = (UniqueConstraint("job_id", "version", name="uq_timeline_job_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    status: Mapped[str] = mapped_column(String(16), default="draft", server_default="draft")
    beat_grid: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    total_duration: Mapped[float | None] = mapped_column(Float)
    # --- ours ---
    #: Music time that plays at video time 0.
    music_offset: Mapped[float | None] = mapped_column(Float)
    target_length: Mapped[float | None] = mapped_column(Float)
    #: What produced this version: "phase3" or "edit:<type>".
    source: Mapped[str | None] = mapped_column(String(64))
    #: Job generation that produced it: makes phase 3 idempotent under redelivery.
    generation: Mapped[int | None] = mapped_column(Integer)
    output_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())

    clips: Mapped[list[TimelineClip]] = relationship(
        back_populates="timeline", order_by="TimelineClip.order_index", cascade="all, delete-orphan"
    )


class TimelineClip(Base):
    __tablename__ = "timeline_clips"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    timeline_id: Mapped[int] = mapped_column(ForeignKey("timeline.id", ondelete="CASCADE"), nullable=False, index=True)
    clip_id: Mapped[int | None] = mapped_column(ForeignKey("clips.id", ondelete="SET NULL"))
    order_index: Mapped[int] = mapped_column(Integer, nullable=False)
    #: Seconds into the clip where its footage starts / ends (trim).
    in_time: Mapped[float | None] = mapped_column(Float)
    out_time: Mapped[float | None] = mapped_column(Float)
    transition_type: Mapped[str | None] = mapped_column(String(32))
    audio_policy: Mapped[str | None] = mapped_column(String(32))
    # --- ours ---
    #: Nominal cut-in / cut-out on the video timeline (both on beats).
    start_time: Mapped[float | None] = mapped_column(Float)
    end_time: Mapped[float | None] = mapped_column(Float)
    beats: Mapped[int | None] = mapped_column(Integer)
    transition_duration: Mapped[float | None] = mapped_column(Float)

    timeline: Mapped[Timeline] = relationship(back_populates="clips")


class Deliverable(Base):
    """Ours: one delivered file of a job (format x variant) for a timeline version, with what was
    measured on it and its compliance findings. `inputs_digest` hashes everything that shaped it, so an
    edit re-renders only the deliverables whose inputs changed."""

    __tablename__ = "deliverables"
    __table_args__ = (UniqueConstraint("job_id", "key", name="uq_deliverables_job_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True)
    key: Mapped[str] = mapped_column(String(64), nullable=False)
    format: Mapped[str] = mapped_column(String(8), nullable=False)
    variant: Mapped[str] = mapped_column(String(16), nullable=False)
    timeline_version: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    uri: Mapped[str | None] = mapped_column(Text)
    captions_vtt_uri: Mapped[str | None] = mapped_column(Text)
    captions_srt_uri: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    target_lufs: Mapped[float | None] = mapped_column(Float)
    integrated_lufs: Mapped[float | None] = mapped_column(Float)
    true_peak_dbtp: Mapped[float | None] = mapped_column(Float)
    inputs_digest: Mapped[str | None] = mapped_column(String(64))
    encode_seconds: Mapped[float | None] = mapped_column(Float)
    compliance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class Edit(Base):
    __tablename__ = "edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    timeline_id: Mapped[int | None] = mapped_column(ForeignKey("timeline.id", ondelete="SET NULL"))
    user_id: Mapped[str | None] = mapped_column(String(128))
    edit_type: Mapped[str] = mapped_column(String(32), nullable=False)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # --- ours ---
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)


class OutboxMessage(Base):
    """Ours: queue messages written in the same transaction as the state change that calls for them
    (the transactional outbox). A relay sends them after commit; `dedup_key` makes staging idempotent,
    so "phase 2 is done, run phase 3" is enqueued exactly once however many workers race to say it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: "cpu" or "gpu": which queue the message goes to.
    queue: Mapped[str] = mapped_column(String(8), nullable=False)
    body: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    dedup_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


class AppliedMessage(Base):
    """Ours: queue messages whose side effect (a re-run request) has been applied, by SQS MessageId.
    A redelivered `start_phase` message resumes the job instead of invalidating it a second time."""

    __tablename__ = "applied_messages"

    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    start_phase: Mapped[int | None] = mapped_column(Integer)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())


class Worker(Base):
    """Ours: the fleet's workers and what they are doing, renewed by each worker's heartbeat. The
    metrics endpoint reads it (backlog per worker) and so do engineers (`picaivid status`)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    worker_type: Mapped[str] = mapped_column(String(8), nullable=False)
    hostname: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="idle", server_default="idle")
    job_id: Mapped[int | None] = mapped_column(Integer)
    clip_id: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    #: Messages handled, by outcome: {"done": n, "retried": n, "deferred": n, "rejected": n, "failed": n},
    #: and under "capabilities" what the worker can render: {"renderers": [...], "skipped": {name: why}}
    #: (`app.worker.registry`; readers summing outcomes take the numbers only).
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
