"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select

from rollback_bot.store import Event, Incident, Store
from rollback_bot.store.audit import record, timeline
from rollback_bot.store.database import head_revision


def test_migrated_schema_matches_the_models(migrated_store: Store) -> None:
    assert _differences(migrated_store) == []
    again = Store(migrated_store.url)  # opening again is a no-op, not an error
    again.close()


def test_the_schema_the_tests_copy_is_the_migrated_one(store: Store) -> None:
    assert _differences(store) == []
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()


def _differences(store: Store) -> list[Any]:
    with store.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata))


def incident(**kw: Any) -> Incident:
    base: dict[str, Any] = dict(
        playbook="p",
        playbook_version="v",
        playbook_path="p.yaml",
        playbook_text="name: p",
        service="s",
        channel="#c",
        severity="major",
        trigger="t",
        summary="x",
        opened_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return Incident(**{**base, **kw})


def test_one_open_incident_per_playbook_is_enforced_by_the_database(store: Store) -> None:
    with store.session() as s:
        s.add(incident())
        s.commit()
        s.add(incident())
        with pytest.raises(IntegrityError):
            s.commit()
        s.rollback()
        s.add(incident(status="resolved"))
        s.add(incident(playbook="other"))
        s.commit()


def test_times_come_back_as_aware_utc_and_naive_times_are_refused(store: Store) -> None:
    cet = timezone(timedelta(hours=1))
    with store.session() as s:
        row = incident(opened_at=datetime(2026, 1, 1, 10, 0, tzinfo=cet))
        s.add(row)
        s.commit()
        ev = record(
            s,
            playbook="p",
            incident_id=row.id,
            kind="note",
            at=datetime(2026, 1, 1, tzinfo=UTC),
            summary="n",
            details={"text": "payload \u2603"},
        )
        s.commit()
    with store.session() as s:
        back = s.exec(select(Incident)).one()
        assert back.opened_at == datetime(2026, 1, 1, 9, 0, tzinfo=UTC) and back.opened_at.tzinfo is not None
        assert timeline(s, back.id or 0)[0].details == {"text": "payload \u2603"}
        assert ev.id is not None
    with store.session() as s:
        s.add(incident(playbook="q", opened_at=datetime(2026, 1, 1)))
        with pytest.raises(Exception, match="naive datetime"):
            s.commit()


def test_unknown_event_kinds_are_refused(store: Store) -> None:
    with store.session() as s, pytest.raises(ValueError, match="unknown event kind"):
        record(s, playbook="p", kind="made.up", at=datetime(2026, 1, 1, tzinfo=UTC), summary="x")
    with store.session() as s:
        assert s.exec(select(Event)).all() == []


def test_each_migration_file_is_named_after_its_revision() -> None:
    """Store skips alembic when the database is at head_revision(), which is read from the file names."""
    import re

    from rollback_bot.store.database import MIGRATIONS, head_revision

    files = sorted((MIGRATIONS / "versions").glob("[0-9]*_*.py"))
    for f in files:
        assert re.search(rf'^revision = "{f.name.split("_", 1)[0]}"$', f.read_text(), re.M), f
    assert head_revision() == files[-1].name.split("_", 1)[0]
