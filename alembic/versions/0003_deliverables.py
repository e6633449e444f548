"""deliverables: formats x variants per job, listing facts, voice-over, per-format camera plans

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 06:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("deliverables", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column("listing_facts", sa.JSON(), server_default=sa.text("'{}'"), nullable=False))
        batch_op.add_column(sa.Column("voiceover_uri", sa.Text(), nullable=True))
    with op.batch_alter_table("clips") as batch_op:
        batch_op.add_column(sa.Column("format_plans", sa.JSON(), server_default=sa.text("'{}'"), nullable=False))
    op.create_table(
        "deliverables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("variant", sa.String(length=16), nullable=False),
        sa.Column("timeline_version", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("captions_vtt_uri", sa.Text(), nullable=True),
        sa.Column("captions_srt_uri", sa.Text(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("target_lufs", sa.Float(), nullable=True),
        sa.Column("integrated_lufs", sa.Float(), nullable=True),
        sa.Column("true_peak_dbtp", sa.Float(), nullable=True),
        sa.Column("inputs_digest", sa.String(length=64), nullable=True),
        sa.Column("encode_seconds", sa.Float(), nullable=True),
        sa.Column("compliance", sa.JSON(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "key", name="uq_deliverables_job_key"),
    )
    with op.batch_alter_table("deliverables") as batch_op:
        batch_op.create_index(batch_op.f("ix_deliverables_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliverables") as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliverables_job_id"))
    op.drop_table("deliverables")
    with op.batch_alter_table("clips") as batch_op:
        batch_op.drop_column("format_plans")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("voiceover_uri")
        batch_op.drop_column("listing_facts")
        batch_op.drop_column("deliverables")
