"""panic runs: since when each playbook's daily panic run is kept, and each day's run (passed, failed, missed),
a failed one a pre-launch alert until acknowledged

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rollback_bot.store.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

WHEN = rollback_bot.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "panic_schedule",
        sa.Column("playbook", sa.String(), nullable=False),
        sa.Column("since", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("playbook"),
    )
    op.create_table(
        "panic_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("playbook", sa.String(), nullable=False),
        sa.Column("day", sa.String(), nullable=False),
        sa.Column("due_at", WHEN, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("acknowledged_by", sa.String(), nullable=True),
        sa.Column("acknowledged_at", WHEN, nullable=True),
        sa.Column("reminded_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("playbook", "day", name="uq_panic_run_day"),
    )
    op.create_index("ix_panic_run_playbook", "panic_run", ["playbook"])


def downgrade() -> None:
    op.drop_index("ix_panic_run_playbook", table_name="panic_run")
    op.drop_table("panic_run")
    op.drop_table("panic_schedule")
