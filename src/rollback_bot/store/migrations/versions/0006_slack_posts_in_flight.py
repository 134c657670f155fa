"""slack posts in flight: the post sent to Slack whose answer has not arrived (looked for before posting
again), and a lease on each playbook channel's sync

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rollback_bot.store.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slack_pending", sa.Integer(), nullable=True))
    with op.batch_alter_table("slack_cursor", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("lease_until", rollback_bot.store.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("slack_cursor", schema=None) as batch_op:
        batch_op.drop_column("lease_until")
        batch_op.drop_column("pending")
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.drop_column("slack_pending")
