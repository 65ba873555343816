"""Fitted forecast models and per-camera history grids, kept so that a restarted server predicts from its
models and re-reads only the recent end of the history instead of refitting and re-reading everything.

Revision ID: 0008_forecast_models
Revises: 0007_forecasts
Create Date: 2026-12-07

Self-contained (does not import the models): the schema at this revision must never change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_forecast_models"
down_revision: str | None = "0007_forecasts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
SERIES = ("series_kind", "camera_id", "series_id", "direction")


def upgrade() -> None:
    op.create_table(
        "forecast_models",
        sa.Column("series_kind", sa.String(8), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("series_id", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("freq", sa.String(8), nullable=False),
        sa.Column("cutoff", sa.String(32), nullable=False),
        sa.Column("calendar", sa.Text(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("fitted_at", TS, nullable=False),
        sa.Column("model", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint(*SERIES, "freq", name="pk_forecast_models"),
    )
    op.create_table(
        "forecast_history",
        sa.Column("freq", sa.String(8), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("saved_at", TS, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("freq", "camera_id", name="pk_forecast_history"),
    )


def downgrade() -> None:
    op.drop_table("forecast_history")
    op.drop_table("forecast_models")
