"""Engine and sessions. DATABASE_URL picks the database: SQLite file by default, PostgreSQL for replicas."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, NoSuchModuleError, OperationalError
from sqlmodel import Session, create_engine

from rollback_bot.errors import DatabaseUnreachable
from rollback_bot.store import models  # noqa: F401  (registers the tables)
from rollback_bot.store.chain import canonical_json

if TYPE_CHECKING:
    from alembic.config import Config

DEFAULT_URL = "sqlite:///rollback-bot.db"
WRITER_TIMEOUT = 30.0  # s a SQLite writer waits for another (the same as busy_timeout)


def insert_for(session: Session) -> Any:
    """The INSERT with ON CONFLICT of the session's database (PostgreSQL or SQLite)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_URL


MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None, location: Path = MIGRATIONS) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, location: Path = MIGRATIONS) -> None:
    """Bring the schema to the newest migration. On PostgreSQL an advisory lock keeps two replicas
    starting together from migrating at the same time."""
    if _at_head(engine, location):  # alembic is not even imported (a quarter of a second of a short command)
        return
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7215539)"))
        command.upgrade(alembic_config(conn, location), "head")


def _unreachable(url: str, exc: BaseException) -> DatabaseUnreachable:
    shown = make_url(url).render_as_string(hide_password=True)
    why = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return DatabaseUnreachable(f"cannot open the database {shown}: {why}; check DATABASE_URL (or --database)")


def head_revision(location: Path = MIGRATIONS) -> str | None:
    """The newest migration's revision: migration files are named after their revision (NNNN_what.py)."""
    return max((p.name.split("_", 1)[0] for p in (location / "versions").glob("[0-9]*_*.py")), default=None)


def _at_head(engine: Engine, location: Path = MIGRATIONS) -> bool:
    head = head_revision(location)
    if head is None:
        return False
    with engine.connect() as conn:  # a database that cannot be reached raises here, once
        try:
            return bool(conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head)
        except DBAPIError:  # a new database: no version table yet
            return False


class Store:
    """Owns the engine; hands out sessions. The schema is migrated to the newest version on open."""

    def __init__(self, url: str | None = None, *, create: bool = True) -> None:
        """`create=False` (commands that only read: exports, checks): a SQLite file that is not there is said,
        not made (an empty database would answer "nothing here" for the wrong reason)."""
        self.url = url or database_url()
        try:
            self.engine = make_engine(self.url)
        except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:  # not a URL we can open
            raise DatabaseUnreachable(
                f"DATABASE_URL is not a database URL rollback-bot can open ({exc}): use sqlite:///FILE or "
                "postgresql+psycopg://USER@HOST/DB"
            ) from None
        missing = _sqlite_file(self.engine) if self.engine.dialect.name == "sqlite" else None
        if not create and missing is not None and not os.path.exists(missing):
            self.engine.dispose()
            raise DatabaseUnreachable(
                f"no database at {missing}: set DATABASE_URL (or --database) to the bot's database"
            )
        try:
            self._writer = _OneWriter(_sqlite_file(self.engine)) if self.engine.dialect.name == "sqlite" else None
            migrate(self.engine)
        except (OperationalError, InterfaceError, OSError) as exc:  # host unknown, refused, password, no folder
            self.engine.dispose()
            raise _unreachable(self.url, exc) from None

    @property
    def file(self) -> str | None:
        """The SQLite database's file; None for PostgreSQL or a database in memory."""
        return _sqlite_file(self.engine) if self.engine.dialect.name == "sqlite" else None

    @property
    def shown_url(self) -> str:
        """The URL as it may be shown: without its password."""
        return make_url(self.url).render_as_string(hide_password=True)

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

    @contextmanager
    def one_statement(self) -> Iterator[Connection]:
        """A connection for one write that is committed when it returns (autocommit): one round trip to the
        database instead of four (a click's insert into the inbox, before its 200). On SQLite it holds the
        writer (see _OneWriter) while it is open."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if self._writer is None:
                yield conn
                return
            self._writer.hold()
            try:
                yield conn
            finally:
                self._writer.drop()

    def close(self) -> None:
        self.engine.dispose()
        if self._writer is not None:
            self._writer.close()


def own_session(engine: Engine, parent: int) -> Session:
    """A session for reading in work that may run in a forked child of process `parent` (forked.in_fork):
    there, the parent's pooled connections are dropped from this copy of the pool, not closed, and stay the
    parent's; the child opens its own."""
    if os.getpid() != parent:
        engine.dispose(close=False)
    return Session(engine)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, json_serializer=canonical_json
        )

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, json_serializer=canonical_json)


_WRITER = "one_writer"
_HOLDS = "holds_writer"


class _OneWriter:
    """SQLite takes one writer at a time, and a waiting writer sleeps in its busy handler (up to 100 ms per
    try): eight clicks at once then wait hundreds of ms. A transaction instead takes this lock at its first
    write (INSERT/UPDATE/DELETE or flush) and gives it back when it ends, so writers queue here and wake at
    once: threads on a lock, and processes (the web workers beside the scheduler process) on an flock of
    `<database>.writer` beside the file, which the kernel drops when a process dies. Reads and the work
    before the first write (Slack lookups included) are not held."""

    def __init__(self, path: str | None) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # transactions of this process holding the writer (one thread's nested sessions)
        self._fd = os.open(f"{path}.writer", os.O_RDWR | os.O_CREAT, 0o600) if path else None

    def take(self, session: Session) -> None:
        if not session.info.get(_HOLDS):
            self.hold()
            session.info[_HOLDS] = True

    def release(self, session: Session) -> None:
        if session.info.get(_HOLDS):
            session.info[_HOLDS] = False
            self.drop()

    def hold(self) -> None:
        self._lock.acquire()
        try:
            if self._depth == 0 and self._fd is not None:
                _flock(self._fd)
        except BaseException:
            self._lock.release()
            raise
        self._depth += 1

    def drop(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _flock(fd: int, timeout: float = WRITER_TIMEOUT) -> None:
    """Take the cross-process writer lock, waking within a millisecond of its release; after `timeout` give
    the same error SQLite gives a writer that waited too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(
                    f"database is locked: another process held the writer for {timeout:.0f} s"
                ) from None
            time.sleep(0.0005)


def _sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine; None in memory."""
    name = engine.url.database
    return None if not name or name == ":memory:" or name.startswith("file:") else os.path.abspath(name)


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
