"""rollouts: phased rollouts guarded by the gate, and the readings of baseline and candidate they compare

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rollback_bot.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WHEN = rollback_bot.store.types.UTCDateTime(timezone=True)
ACTIVE = "status IN ('running', 'held')"


def upgrade() -> None:
    op.create_table(
        "rollout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("playbook", sa.String(), nullable=False),
        sa.Column("playbook_version", sa.String(), nullable=False),
        sa.Column("baseline", sa.String(), nullable=False),
        sa.Column("candidate", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("started_by", sa.String(), nullable=False),
        sa.Column("stage_started_at", WHEN, nullable=False),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column("verdict_at", WHEN, nullable=True),
        sa.Column("held_by", sa.String(), nullable=True),
        sa.Column("traffic", sa.Float(), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rollout_playbook", "rollout", ["playbook"])
    op.create_index(
        "uq_rollout_active_per_playbook",
        "rollout",
        ["playbook"],
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )
    op.create_table(
        "rollout_reading",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("signal", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("segment", sa.String(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollout.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rollout_reading_at", "rollout_reading", ["rollout_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_rollout_reading_at", table_name="rollout_reading")
    op.drop_table("rollout_reading")
    op.drop_index("uq_rollout_active_per_playbook", table_name="rollout")
    op.drop_index("ix_rollout_playbook", table_name="rollout")
    op.drop_table("rollout")
