"""Migrations and the schema contract with the Rails backend, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect, text

from app.db.migrate import current_revision, head_revision, upgrade
from app.db.session import get_engine

BACKEND_COLUMNS = {
    "jobs": {
        "id",
        "listing_id",
        "status",
        "current_phase",
        "template_type",
        "target_length",
        "music_uri",
        "bpm",
        "beat_offset",
        "enable_beat_sync",
    },
    "photos": {
        "id",
        "job_id",
        "s3_uri",
        "room_label",
        "room_override",
        "exclude",
        "manual_metadata",
        "sharpness",
        "exposure_score",
        "composition_score",
        "base_score",
        "final_score",
    },
    "room_clusters": {
        "id",
        "job_id",
        "room_type",
        "confidence_tier",
        "sfm_eligible",
        "image_count",
        "overlap_score",
        "depth_variance",
    },
    "analysis_results": {
        "id",
        "job_id",
        "room_cluster_id",
        "hero_photo_id",
        "recommended_motion",
        "allowed_motion_types",
        "recommended_duration",
        "tier",
        "model_recommendation",
        "debug_metrics",
    },
    "clips": {
        "id",
        "job_id",
        "room_cluster_id",
        "source_photo_ids",
        "motion_type",
        "model_used",
        "is_3d",
        "duration",
        "s3_uri",
        "validation_score",
        "status",
    },
    "timeline": {"id", "job_id", "version", "status", "beat_grid", "total_duration"},
    "timeline_clips": {
        "id",
        "timeline_id",
        "clip_id",
        "order_index",
        "in_time",
        "out_time",
        "transition_type",
        "audio_policy",
    },
    "edits": {"id", "timeline_id", "user_id", "edit_type", "payload", "created_at"},
}


def test_schema_has_every_backend_column(database_url: str) -> None:
    insp = inspect(get_engine(database_url))
    for table, columns in BACKEND_COLUMNS.items():
        have = {c["name"] for c in insp.get_columns(table)}
        assert columns <= have, f"{table} lacks {columns - have}"
    assert current_revision(database_url) == head_revision(database_url)


def test_rails_style_inserts_get_the_documented_defaults(database_url: str) -> None:
    """Rails writes rows with only the columns it knows; our extra columns must not break that."""
    engine = get_engine(database_url)
    with engine.begin() as conn:
        job_id = conn.execute(text("insert into jobs (listing_id) values ('L-1') returning id")).scalar_one()
        conn.execute(text("insert into photos (job_id, s3_uri) values (:j, 's3://b/k.jpg')"), {"j": job_id})
        conn.execute(text("insert into timeline (job_id) values (:j)"), {"j": job_id})
        row = conn.execute(
            text("select status, current_phase, enable_beat_sync from jobs where id=:j"), {"j": job_id}
        ).one()
        photo = conn.execute(text("select exclude from photos where job_id=:j"), {"j": job_id}).one()
        tl = conn.execute(text("select version, status from timeline where job_id=:j"), {"j": job_id}).one()
    assert (row[0], row[1], bool(row[2])) == ("pending", 0, True)
    assert bool(photo[0]) is False
    assert (tl[0], tl[1]) == (1, "draft")


def test_upgrade_is_idempotent(database_url: str) -> None:
    assert upgrade(database_url) == head_revision(database_url)
