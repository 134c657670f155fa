"""inbound requests seen (replays are ignored), and the last timeline export of each incident

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import rollback_bot.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_request",
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", rollback_bot.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("signature"),
    )
    with op.batch_alter_table("inbound_request", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_request_at", ["at"], unique=False)
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("exported_at", rollback_bot.store.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("exported_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("export_link", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.drop_column("export_link")
        batch_op.drop_column("exported_by")
        batch_op.drop_column("exported_at")
    with op.batch_alter_table("inbound_request", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_request_at")
    op.drop_table("inbound_request")
