"""Event identity scoped by camera; seqs resolved without an event (dead letters) for the watermark.

Revision ID: 0006_identity_resolved
Revises: 0005_revoked_sessions
Create Date: 2026-12-02

- ``events``' primary key becomes ``(event_id, camera_id)``: one camera can no longer take the id
  another camera will use next and have that camera's event dropped as a duplicate. ``event_id`` comes
  first so a look-up by id (the SQLite path's) still uses the key.
- ``resolved_seqs``: a camera's seq the server settled without storing an event (dead-lettered for a
  reason that will not go away: timestamp out of range, conflicting duplicate, schema error). The
  watermark counts it as filled, so the edge is told it may let the seq go and nothing waits for it.
- PostgreSQL: ``dead_letters.id`` becomes bigint (with its sequence): a device flooding malformed
  messages must not run a 32-bit id out, after which every batch with a dead letter would fail. On
  SQLite it is the 64-bit rowid already.

Self-contained (does not import the models): the schema at this revision must never change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_identity_resolved"
down_revision: str | None = "0005_revoked_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("events", recreate="auto") as batch:
        batch.drop_constraint("pk_events", type_="primary")
        batch.create_primary_key("pk_events", ["event_id", "camera_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("dead_letters", "id", type_=sa.BigInteger(), existing_nullable=False)
        op.execute("ALTER SEQUENCE dead_letters_id_seq AS bigint")
    op.create_table(
        "resolved_seqs",
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("dead_letter_id", sa.BigInteger(), nullable=True),
        sa.Column("resolved_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("camera_id", "seq", name="pk_resolved_seqs"),
    )


def downgrade() -> None:
    op.drop_table("resolved_seqs")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER SEQUENCE dead_letters_id_seq AS integer")
        op.alter_column("dead_letters", "id", type_=sa.Integer(), existing_nullable=False)
    with op.batch_alter_table("events", recreate="auto") as batch:
        batch.drop_constraint("pk_events", type_="primary")
        batch.create_primary_key("pk_events", ["event_id"])
