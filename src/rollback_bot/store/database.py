"""Engine and sessions. DATABASE_URL picks the database: SQLite file by default, PostgreSQL for replicas."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, create_engine

from rollback_bot.store import models  # noqa: F401  (registers the tables)

DEFAULT_URL = "sqlite:///rollback-bot.db"


def insert_for(session: Session) -> Any:
    """The INSERT with ON CONFLICT of the session's database (PostgreSQL or SQLite)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_URL


MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration. On PostgreSQL an advisory lock keeps two replicas
    starting together from migrating at the same time."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7215539)"))
        command.upgrade(alembic_config(conn), "head")


class Store:
    """Owns the engine; hands out sessions. The schema is migrated to the newest version on open."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or database_url()
        self.engine = make_engine(self.url)
        self._writer = _OneWriter() if self.engine.dialect.name == "sqlite" else None
        migrate(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        if self._writer is None:
            with Session(self.engine, expire_on_commit=False) as s:
                yield s
            return
        with _WriterSession(self.engine, expire_on_commit=False, info={_WRITER: self._writer}) as s:
            try:
                yield s
            finally:
                self._writer.release(s)

    def close(self) -> None:
        self.engine.dispose()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


_WRITER = "one_writer"
_HOLDS = "holds_writer"


class _OneWriter:
    """SQLite takes one writer at a time, and a waiting writer sleeps in its busy handler (up to 100 ms per
    try): eight clicks at once then wait hundreds of ms. Within this process, a transaction instead takes this
    lock at its first write (INSERT/UPDATE/DELETE or flush) and gives it back when it ends, so writers queue
    here and wake at once. Reads and the work before the first write (Slack lookups included) are not held."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def take(self, session: Session) -> None:
        if not session.info.get(_HOLDS):
            self._lock.acquire()
            session.info[_HOLDS] = True

    def release(self, session: Session) -> None:
        if session.info.get(_HOLDS):
            session.info[_HOLDS] = False
            self._lock.release()


class _WriterSession(Session):
    """A session of a SQLite store: its writes go through the store's _OneWriter. The listeners are set once,
    on this class (setting them on each session cost about 0.4 ms a session)."""


@event.listens_for(_WriterSession, "do_orm_execute")
def _on_execute(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WRITER].take(state.session)


@event.listens_for(_WriterSession, "before_flush")
def _on_flush(session: Any, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        session.info[_WRITER].take(session)


@event.listens_for(_WriterSession, "after_commit")
@event.listens_for(_WriterSession, "after_rollback")
def _on_end(session: Any) -> None:
    session.info[_WRITER].release(session)
