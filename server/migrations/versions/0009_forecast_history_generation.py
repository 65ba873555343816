"""A generation per stored history grid, so that a grid read before an import into the camera's past is
never saved over the import's mark (the import bumps the generation; a save needs the one it read under).

Revision ID: 0009_forecast_history_generation
Revises: 0008_forecast_models
Create Date: 2026-12-07

Self-contained (does not import the models): the schema at this revision must never change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_forecast_history_generation"
down_revision: str | None = "0008_forecast_models"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("forecast_history") as batch:
        batch.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("forecast_history") as batch:
        batch.drop_column("generation")
