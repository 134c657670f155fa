"""alertmanager alerts: what POST /alertmanager received, the latest state of each alert

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rollback_bot.store.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

WHEN = rollback_bot.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alertmanager_alert",
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("alertname", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("starts_at", WHEN, nullable=False),
        sa.Column("ends_at", WHEN, nullable=True),
        sa.Column("received_at", WHEN, nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("generator_url", sa.Text(), nullable=False),
        sa.Column("receiver", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint"),
    )
    op.create_index("ix_alertmanager_alert_alertname", "alertmanager_alert", ["alertname"])


def downgrade() -> None:
    op.drop_index("ix_alertmanager_alert_alertname", table_name="alertmanager_alert")
    op.drop_table("alertmanager_alert")
