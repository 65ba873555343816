"""Rollups (flow, zone, OD, observed seconds at 1m/15m/1h/1d), camera state, API keys.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-01

Self-contained (does not import the models): the schema at this revision must never change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
RES = ("1m", "15m", "1h", "1d")
CLASSES = ("car", "truck", "bus", "motorcycle", "bicycle", "person")


def _i(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")


def _f(name: str) -> sa.Column:
    return sa.Column(name, sa.Float(), nullable=False, server_default="0")


def upgrade() -> None:
    for r in RES:
        op.create_table(
            f"flow_{r}",
            sa.Column("camera_id", sa.String(64), nullable=False),
            sa.Column("bucket", sa.BigInteger(), nullable=False),
            sa.Column("line_id", sa.String(64), nullable=False),
            sa.Column("direction", sa.String(8), nullable=False),
            _f("speed_sum"),
            _i("speed_n"),
            *[_i(f"n_{c}") for c in CLASSES],
            sa.PrimaryKeyConstraint("camera_id", "bucket", "line_id", "direction", name=f"pk_flow_{r}"),
        )
        op.create_index(f"ix_flow_{r}_bucket", f"flow_{r}", ["bucket"])

        op.create_table(
            f"zone_{r}",
            sa.Column("camera_id", sa.String(64), nullable=False),
            sa.Column("bucket", sa.BigInteger(), nullable=False),
            sa.Column("zone_id", sa.String(64), nullable=False),
            sa.Column("lane", sa.Boolean(), nullable=False, server_default=sa.false()),
            _i("samples"),
            _f("interval_s"),
            _f("occupied_s"),
            _i("entered"),
            _f("queue_m_sum"),
            _f("queue_veh_sum"),
            _i("queue_n"),
            _f("speed_sum"),
            _f("speed_n"),
            *[_f(f"occ_{c}") for c in CLASSES],
            sa.PrimaryKeyConstraint("camera_id", "bucket", "zone_id", name=f"pk_zone_{r}"),
        )
        op.create_index(f"ix_zone_{r}_bucket", f"zone_{r}", ["bucket"])

        op.create_table(
            f"od_{r}",
            sa.Column("camera_id", sa.String(64), nullable=False),
            sa.Column("bucket", sa.BigInteger(), nullable=False),
            sa.Column("entry_zone", sa.String(64), nullable=False),
            sa.Column("exit_zone", sa.String(64), nullable=False),
            _f("duration_sum"),
            _f("speed_sum"),
            _i("speed_n"),
            *[_i(f"n_{c}") for c in CLASSES],
            sa.PrimaryKeyConstraint("camera_id", "bucket", "entry_zone", "exit_zone", name=f"pk_od_{r}"),
        )
        op.create_index(f"ix_od_{r}_bucket", f"od_{r}", ["bucket"])

        op.create_table(
            f"observed_{r}",
            sa.Column("camera_id", sa.String(64), nullable=False),
            sa.Column("bucket", sa.BigInteger(), nullable=False),
            _f("observed_s"),
            sa.PrimaryKeyConstraint("camera_id", "bucket", name=f"pk_observed_{r}"),
        )
        op.create_index(f"ix_observed_{r}_bucket", f"observed_{r}", ["bucket"])

    op.create_table(
        "camera_state",
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("observed_to_s", sa.Float(), nullable=True),
        sa.Column("pushed_config", sa.Text(), nullable=True),
        sa.Column("pushed_config_version", sa.String(64), nullable=True),
        sa.Column("pushed_at", TS, nullable=True),
        sa.Column("replay_requests", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_replay_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("camera_id", name="pk_camera_state"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("camera_state")
    for r in RES:
        for fam in ("observed", "od", "zone", "flow"):
            op.drop_index(f"ix_{fam}_{r}_bucket", table_name=f"{fam}_{r}")
            op.drop_table(f"{fam}_{r}")
