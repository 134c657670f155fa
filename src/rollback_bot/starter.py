"""`rollback-bot init`: a starter playbook and the built-in templates, written into a folder to edit."""

from __future__ import annotations

from pathlib import Path

from rollback_bot.builtin import builtin_dir

PLAYBOOK = "my-service.yaml"


class StarterExists(Exception):
    def __init__(self, paths: list[Path]) -> None:
        super().__init__(", ".join(map(str, paths)))
        self.paths = paths


def starter_files(dest: Path) -> dict[Path, bytes]:
    """What `init` writes: playbooks/starter.yaml as DEST/my-service.yaml, its `templates:` pointing at
    DEST/templates, and every built-in template there."""
    templates = builtin_dir("templates").resolve()
    text = (builtin_dir("playbooks") / "starter.yaml").read_text(encoding="utf-8")
    edited = text.replace("\ntemplates: ../templates ", "\ntemplates: templates    ", 1)
    if edited == text:
        raise AssertionError("playbooks/starter.yaml has no `templates: ../templates` line to point elsewhere")
    files = {dest / PLAYBOOK: edited.encode()}
    for path in sorted(templates.rglob("*.j2")):
        files[dest / "templates" / path.relative_to(templates)] = path.read_bytes()
    return files


def write_starter(dest: Path, *, force: bool = False) -> list[Path]:
    """Write the starter; StarterExists names the files that are there already (unless `force`)."""
    files = starter_files(dest)
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise StarterExists(existing)
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return list(files)
