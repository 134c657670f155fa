"""watching state: no-data and damping state of triggers, silent signals, poll groups

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import rollback_bot.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "poll_state",
        sa.Column("playbook", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("poll_group", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("every_s", sa.Float(), nullable=False),
        sa.Column("signals", sa.Integer(), nullable=False),
        sa.Column("started_at", rollback_bot.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", rollback_bot.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("behind", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("playbook", "poll_group"),
    )
    with op.batch_alter_table("trigger_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("nodata_since", rollback_bot.store.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("healthy_since", rollback_bot.store.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("outcomes", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("blind", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("signal_health", schema=None) as batch_op:
        batch_op.add_column(sa.Column("empties", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("silent", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.create_index("ix_reading_playbook_at", ["playbook", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.drop_index("ix_reading_playbook_at")
    with op.batch_alter_table("signal_health", schema=None) as batch_op:
        batch_op.drop_column("silent")
        batch_op.drop_column("empties")
    with op.batch_alter_table("trigger_state", schema=None) as batch_op:
        batch_op.drop_column("blind")
        batch_op.drop_column("outcomes")
        batch_op.drop_column("healthy_since")
        batch_op.drop_column("nodata_since")
    op.drop_table("poll_state")
