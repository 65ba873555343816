"""Forecasts per counting line/lane and direction, each series' state (cold start, open anomaly), and
the flow anomalies (expected, observed, window) behind ``flow_anomaly`` incidents.

Revision ID: 0007_forecasts
Revises: 0006_identity_resolved
Create Date: 2026-12-02

Self-contained (does not import the models): the schema at this revision must never change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_forecasts"
down_revision: str | None = "0006_identity_resolved"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
SERIES = ("series_kind", "camera_id", "series_id", "direction")


def _series_columns() -> list[sa.Column]:
    return [
        sa.Column("series_kind", sa.String(8), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("series_id", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "forecasts",
        *_series_columns(),
        sa.Column("freq", sa.String(8), nullable=False),
        sa.Column("ds", sa.BigInteger(), nullable=False),
        sa.Column("forecast", sa.Float(), nullable=False),
        sa.Column("lo80", sa.Float(), nullable=False),
        sa.Column("hi80", sa.Float(), nullable=False),
        sa.Column("origin", sa.BigInteger(), nullable=False),
        sa.Column("made_at", TS, nullable=False),
        sa.PrimaryKeyConstraint(*SERIES, "freq", "ds", name="pk_forecasts"),
    )
    op.create_index("ix_forecasts_ds", "forecasts", ["ds"])
    op.create_table(
        "forecast_series",
        *_series_columns(),
        sa.Column("site_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("observed_days", sa.Float(), nullable=False, server_default="0"),
        sa.Column("needed_days", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("refreshed_at", TS, nullable=False),
        sa.Column("anomaly_incident_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint(*SERIES, name="pk_forecast_series"),
    )
    op.create_table(
        "flow_anomalies",
        sa.Column("incident_id", sa.String(36), nullable=False),
        *_series_columns(),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("expected", sa.Float(), nullable=False),
        sa.Column("lo80", sa.Float(), nullable=False),
        sa.Column("hi80", sa.Float(), nullable=False),
        sa.Column("observed", sa.Float(), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("incident_id", name="pk_flow_anomalies"),
    )
    op.create_index("ix_flow_anomalies_window_start", "flow_anomalies", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_flow_anomalies_window_start", table_name="flow_anomalies")
    op.drop_table("flow_anomalies")
    op.drop_table("forecast_series")
    op.drop_index("ix_forecasts_ds", table_name="forecasts")
    op.drop_table("forecasts")
