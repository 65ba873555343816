"""Initial schema: events, cameras, dead_letters.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("ts_s", sa.BigInteger(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("line_id", sa.String(64), nullable=True),
        sa.Column("direction", sa.String(8), nullable=True),
        sa.Column("class_name", sa.String(32), nullable=True),
        sa.Column("track_id", sa.BigInteger(), nullable=True),
        sa.Column("speed_kmh", sa.Float(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_events"),
    )
    op.create_index("ix_events_camera_id_seq", "events", ["camera_id", "seq"])
    op.create_index("ix_events_kind_camera_id_ts_s", "events", ["kind", "camera_id", "ts_s"])
    op.create_index("ix_events_ts_s", "events", ["ts_s"])

    op.create_table(
        "cameras",
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("first_seen", TS, nullable=True),
        sa.Column("last_seen", TS, nullable=True),
        sa.Column("state", sa.String(16), nullable=False, server_default="unknown"),
        sa.Column("last_status", sa.Text(), nullable=True),
        sa.Column("config_version", sa.String(64), nullable=True),
        sa.Column("model_version", sa.String(128), nullable=True),
        sa.Column("committed_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("camera_id", name="pk_cameras"),
    )

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_b64", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("cameras")
    op.drop_index("ix_events_ts_s", table_name="events")
    op.drop_index("ix_events_kind_camera_id_ts_s", table_name="events")
    op.drop_index("ix_events_camera_id_seq", table_name="events")
    op.drop_table("events")
