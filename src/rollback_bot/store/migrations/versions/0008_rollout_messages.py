"""rollout messages: where each rollout's Slack message is, what it shows, whether its post is in flight, and
when the gate last looked (what the message shows is the gate as of that look)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rollback_bot.store.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollout") as batch:
        batch.add_column(sa.Column("slack_channel", sa.String(), nullable=True))
        batch.add_column(sa.Column("slack_ts", sa.String(), nullable=True))
        batch.add_column(sa.Column("slack_rendered", sa.String(), nullable=True))
        batch.add_column(sa.Column("slack_pending", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("looked_at", rollback_bot.store.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollout") as batch:
        batch.drop_column("looked_at")
        batch.drop_column("slack_pending")
        batch.drop_column("slack_rendered")
        batch.drop_column("slack_ts")
        batch.drop_column("slack_channel")
