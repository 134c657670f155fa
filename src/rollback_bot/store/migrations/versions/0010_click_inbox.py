"""click inbox: a click is written before its 200 and worked off after, under a lease

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rollback_bot.store.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

WHEN = rollback_bot.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "click_inbox",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("received_at", WHEN, nullable=False),
        sa.Column("click", sa.Text(), nullable=False),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("claimed_until", WHEN, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("done_at", WHEN, nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_click_inbox_done_at", "click_inbox", ["done_at"])


def downgrade() -> None:
    op.drop_index("ix_click_inbox_done_at", table_name="click_inbox")
    op.drop_table("click_inbox")
