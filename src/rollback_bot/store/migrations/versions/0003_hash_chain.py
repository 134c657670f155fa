"""hash chain

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:03:03.078076
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_head",
        sa.Column("chain", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("chain"),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=""))
    _chain_existing_events()
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_chain"), ["chain"], unique=False)
        batch_op.create_unique_constraint("uq_event_chain_seq", ["chain", "seq"])


def _chain_existing_events() -> None:
    """Chain the events already stored, in the order they were written (by id)."""
    from rollback_bot.store.chain import GENESIS, chain_of, event_hash
    from rollback_bot.store.types import UTCDateTime

    bind = op.get_bind()
    event = sa.table(
        "event",
        sa.column("id", sa.Integer),
        sa.column("incident_id", sa.Integer),
        sa.column("playbook", sa.String),
        sa.column("at", UTCDateTime()),
        sa.column("kind", sa.String),
        sa.column("actor", sa.String),
        sa.column("role", sa.String),
        sa.column("summary", sa.Text),
        sa.column("details", sa.JSON),
        sa.column("chain", sa.String),
        sa.column("seq", sa.Integer),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
    )
    heads: dict[str, tuple[int, str]] = {}
    for row in bind.execute(sa.select(event).order_by(event.c.id)).mappings().all():
        chain = chain_of(row["incident_id"], row["playbook"])
        seq, prev = heads.get(chain, (0, GENESIS))
        seq += 1
        digest = event_hash(
            chain=chain,
            seq=seq,
            prev_hash=prev,
            incident_id=row["incident_id"],
            playbook=row["playbook"],
            at=row["at"],
            kind=row["kind"],
            actor=row["actor"],
            role=row["role"],
            summary=row["summary"],
            details=row["details"] or {},
        )
        bind.execute(
            event.update().where(event.c.id == row["id"]).values(chain=chain, seq=seq, prev_hash=prev, hash=digest)
        )
        heads[chain] = (seq, digest)
    head = sa.table(
        "chain_head", sa.column("chain", sa.String), sa.column("seq", sa.Integer), sa.column("hash", sa.String)
    )
    for chain, (seq, digest) in heads.items():
        bind.execute(head.insert().values(chain=chain, seq=seq, hash=digest))


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_constraint("uq_event_chain_seq", type_="unique")
        batch_op.drop_index(batch_op.f("ix_event_chain"))
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
        batch_op.drop_column("chain")

    op.drop_table("chain_head")
