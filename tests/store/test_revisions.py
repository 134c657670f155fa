"""`rollback-bot db revision` (make migration) writes the next migration from the models: nothing when the
migrations are current, and exactly what is missing when they are not."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from rollback_bot.store.database import MIGRATIONS
from rollback_bot.store.revisions import new_revision


def _copy(tmp_path: Path) -> Path:
    location = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, location, ignore=shutil.ignore_patterns("__pycache__"))
    return location


def test_current_migrations_give_no_file(tmp_path: Path) -> None:
    location = _copy(tmp_path)
    before = sorted((location / "versions").glob("*.py"))
    assert new_revision("nothing new", location=location) is None  # the models and the migrations agree
    assert sorted((location / "versions").glob("*.py")) == before


def test_a_missing_migration_is_written_from_the_models(tmp_path: Path) -> None:
    location = _copy(tmp_path)
    newest = max((location / "versions").glob("0*.py"))
    removed = newest.read_text()
    newest.unlink()  # as if the models had changed and nobody wrote the migration yet
    path = new_revision("written again", location=location)
    assert path is not None and path.name == f"{newest.name[:4]}_written_again.py"
    assert f"revision = '{newest.name[:4]}'" in path.read_text()
    text = path.read_text()
    # every table and column the removed migration made is made again, in upgrade and undone in downgrade
    made = re.findall(r'(?:create_table|sa\.Column)\(\s*"(\w+)"', removed)
    assert made, removed
    for name in made:
        assert f"'{name}'" in text, (name, text)
    assert "def downgrade() -> None:" in text and ("drop_table" in text or "drop_column" in text)
