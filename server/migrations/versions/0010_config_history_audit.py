"""The configuration editor: every configuration pushed to a camera (who, when, which version, and when
its edge first reported running it) and an audit log of admin actions (reference pictures asked for and
seen, configurations pushed and rolled back).

Revision ID: 0010_config_history_audit
Revises: 0009_forecast_history_generation
Create Date: 2026-12-07

Self-contained (does not import the models): the schema at this revision must never change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_config_history_audit"
down_revision: str | None = "0009_forecast_history_generation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("pushed_at", TS, nullable=False),
        sa.Column("pushed_by", sa.String(200), nullable=False),
        sa.Column("confirmed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_config_versions"),
    )
    op.create_index("ix_config_versions_camera_id_id", "config_versions", ["camera_id", "id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_config_versions_camera_id_id", table_name="config_versions")
    op.drop_table("config_versions")
