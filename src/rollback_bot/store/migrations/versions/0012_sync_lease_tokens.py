"""leader tokens on sync leases and action stages: a Slack sync lease taken, or an action stage sent, by the
leading scheduler carries its fencing token, so the next leader takes it over at once instead of waiting for it
to run out

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slack_lease_token", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("slack_cursor", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_token", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("actionrun", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("actionrun", schema=None) as batch_op:
        batch_op.drop_column("token")
    with op.batch_alter_table("slack_cursor", schema=None) as batch_op:
        batch_op.drop_column("lease_token")
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.drop_column("slack_lease_token")
