"""hold reminders and slack sync

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 04:23:33.898748
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import rollback_bot.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_cursor",
        sa.Column("playbook", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("playbook"),
    )
    op.create_table(
        "reminder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", rollback_bot.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("incident_id", "key", name="uq_reminder_key"),
    )
    with op.batch_alter_table("reminder", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reminder_incident_id"), ["incident_id"], unique=False)

    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("held_at", rollback_bot.store.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("slack_cursor", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("slack_rendered", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("slack_lease_until", rollback_bot.store.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.drop_column("slack_lease_until")
        batch_op.drop_column("slack_rendered")
        batch_op.drop_column("slack_cursor")
        batch_op.drop_column("held_at")
        batch_op.drop_column("held_by")

    with op.batch_alter_table("reminder", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reminder_incident_id"))

    op.drop_table("reminder")
    op.drop_table("slack_cursor")
