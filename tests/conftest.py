from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from rollback_bot.clock import FakeClock
from rollback_bot.store.database import Store, make_engine, migrate
from tests.helpers import FakeHTTP

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_available() -> str | None:
    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means: not here
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(scope="session")
def postgres_problem() -> str | None:
    return _postgres_available()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the newest schema, once per test process: each test gets a copy of it (a
    millisecond) instead of running every migration again (a fifth of a second)."""
    path = tmp_path_factory.mktemp("schema") / "migrated.db"
    Store(f"sqlite:///{path}").close()  # the last connection's close folds the WAL back into the file
    return path


@pytest.fixture(scope="session")
def migration_statements(
    postgres_problem: str | None, tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[str, Any, bool]]:
    """Every statement the migrations send to an empty PostgreSQL schema, recorded once per test process and
    replayed into each test's own schema in one transaction: the same statements, so the same schema and rows,
    in a twentieth of the time."""
    if postgres_problem:
        return []
    recorded: list[tuple[str, Any, bool]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        recorded.append((statement, parameters, many))

    with _database("postgres", tmp_path_factory.getbasetemp(), None, lambda kind, where: None) as url:
        engine = make_engine(url)
        with engine.connect():  # the dialect's own first queries are not part of the schema
            pass
        sqlalchemy.event.listen(engine, "after_cursor_execute", record)  # those that worked
        migrate(engine)
        engine.dispose()
    return recorded


STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def _database(kind: str, tmp_path: Path, postgres_problem: str | None, prepare: Any) -> Iterator[str]:
    """A new SQLite file or PostgreSQL schema, prepared by `prepare(kind, where)`, and its URL."""
    if kind == "sqlite":
        prepare(kind, tmp_path / "test.db")
        yield f"sqlite:///{tmp_path}/test.db"
        return
    if postgres_problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {postgres_problem}")
        pytest.skip(postgres_problem)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f'create schema "{schema}"'))
        conn.execute(sqlalchemy.text(f'set local search_path to "{schema}"'))
        prepare(kind, conn)
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'drop schema "{schema}" cascade'))
        admin.dispose()


@pytest.fixture(params=STORES)
def store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    postgres_problem: str | None,
    migrated_sqlite: Path,
    migration_statements: list[tuple[str, Any, bool]],
) -> Iterator[Store]:
    """A fresh, empty store at the newest schema on SQLite (a file) and on PostgreSQL (a schema of its own),
    from the schema made once per test process (see migrated_sqlite and migration_statements)."""

    def prepare(kind: str, where: Any) -> None:
        if kind == "sqlite":
            shutil.copyfile(migrated_sqlite, where)
            return
        for statement, parameters, many in migration_statements:
            where.exec_driver_sql(statement, parameters if many else (parameters or None))

    with _database(request.param, tmp_path, postgres_problem, prepare) as url:
        s = Store(url)
        yield s
        s.close()


@pytest.fixture(params=STORES)
def migrated_store(request: pytest.FixtureRequest, tmp_path: Path, postgres_problem: str | None) -> Iterator[Store]:
    """An empty database migrated by Store itself, every migration in turn (what `store` copies)."""
    with _database(request.param, tmp_path, postgres_problem, lambda kind, where: None) as url:
        s = Store(url)
        yield s
        s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def fake_http() -> Iterator[FakeHTTP]:
    fake = FakeHTTP()
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
