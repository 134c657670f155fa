"""The templates and example playbooks that ship inside the package: `data/templates` and `data/playbooks`
are links to the repository's top-level `templates/` and `playbooks/` (one copy; the wheel gets the files)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Literal


class BuiltinMissing(Exception):
    pass


def builtin_dir(name: Literal["templates", "playbooks"]) -> Path:
    """The built-in folder on disk, in a checkout, an editable install or an installed wheel."""
    found = files("rollback_bot") / "data" / name
    path = Path(str(found))
    if not path.is_dir():  # a zipped install, or a checkout whose links were not made (Windows)
        raise BuiltinMissing(f"the built-in {name} are not in this installation ({found})")
    return path


def builtin_templates() -> Path:
    return builtin_dir("templates")
