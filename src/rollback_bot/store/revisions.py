"""A maintainer's next migration: `rollback-bot db revision -m MESSAGE` (or `make migration m=...`) writes what
the models have that the newest migration does not, compared by Alembic against a scratch SQLite database
brought to the newest migration, numbered after the last one (0013_<message>.py)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from alembic import command

from rollback_bot.store.database import MIGRATIONS, alembic_config, make_engine, migrate


def next_id(location: Path) -> str:
    numbers = [int(m.group(1)) for p in (location / "versions").glob("*.py") if (m := re.match(r"(\d+)_", p.name))]
    return f"{max(numbers, default=0) + 1:04d}"


def _skip_empty(context: object, revision: object, directives: list[Any]) -> None:
    if directives and directives[0].upgrade_ops.is_empty():
        directives[:] = []  # the models and the migrations agree: no file


def new_revision(message: str, *, location: Path = MIGRATIONS) -> Path | None:
    """Write the next migration into `location`/versions; its path, or None when there is nothing to migrate."""
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{scratch}/scratch.db")
        try:
            migrate(engine, location=location)
            with engine.begin() as conn:
                cfg = alembic_config(conn, location=location)
                cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
                script = command.revision(
                    cfg,
                    message=message,
                    autogenerate=True,
                    rev_id=next_id(location),
                    process_revision_directives=_skip_empty,
                )
        finally:
            engine.dispose()
    if script is None or isinstance(script, list):
        return None
    return Path(script.path)
