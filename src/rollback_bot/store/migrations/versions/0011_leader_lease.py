"""leader lease: one scheduler process acts, the others stand by; its token fences a paused old leader

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 21:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rollback_bot.store.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

WHEN = rollback_bot.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leader_lease",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("leader_lease")
