"""`rollback-bot check`: validate playbooks and the templates they reference."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rollback_bot.playbook.loader import LoadedPlaybook, PlaybookError, PlaybookInvalid, load_playbook
from rollback_bot.render.comms import check_templates


def playbook_files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
        else:
            out.append(p)
    return out


def check_file(path: Path) -> tuple[LoadedPlaybook | None, list[PlaybookError]]:
    try:
        loaded = load_playbook(path)
    except PlaybookInvalid as exc:
        return None, exc.errors
    return loaded, check_templates(loaded)


def load_checked(path: str | Path) -> LoadedPlaybook:
    """Load a playbook for running it: every problem `check` would report stops it."""
    loaded, errors = check_file(Path(path))
    if errors or loaded is None:
        raise PlaybookInvalid(errors)
    return loaded
