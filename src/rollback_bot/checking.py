"""`rollback-bot check`: validate playbooks, the templates they reference and the environment they need."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from rollback_bot.playbook.loader import LoadedPlaybook, PlaybookError, PlaybookInvalid, load_playbook
from rollback_bot.render.comms import check_templates
from rollback_bot.secrets import strings, unset_in


def playbook_files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
        else:
            out.append(p)
    return out


def check_file(path: Path, *, env: bool = True) -> tuple[LoadedPlaybook | None, list[PlaybookError]]:
    """Every problem, each with its line. `env=False` skips `unset_variables` (not the production env)."""
    try:
        loaded = load_playbook(path)
    except PlaybookInvalid as exc:  # what is left of it is checked too: every problem in one run
        rest = exc.rest
        more = check_templates(rest) + (list(unset_variables(rest)) if env else []) if rest is not None else []
        return None, _in_order(exc.errors + more)
    errors = check_templates(loaded) + (list(unset_variables(loaded)) if env else [])
    return loaded, _in_order(errors)


def _in_order(errors: list[PlaybookError]) -> list[PlaybookError]:
    """The playbook's own errors by line, then each template's."""
    return sorted(errors, key=lambda e: (not e.file.endswith((".yaml", ".yml")), e.file, e.line))


def unset_variables(loaded: LoadedPlaybook) -> Iterator[PlaybookError]:
    """Each `${VAR}` a webhook uses that is not set here: said at start-up, not found out as an empty
    header when a rollback is approved. (A metric source's is reported by each read, which fails.)"""
    for i, step in enumerate(loaded.playbook.ladder):
        for j, action in enumerate(step.actions):
            hook = action.webhook
            texts = [
                (("url",), hook.url),
                *((("headers", name), value) for name, value in hook.headers.items()),
                *((("body", *path), text) for path, text in strings(hook.body, ())),
            ]
            for where, text in texts:
                for name in unset_in(text):
                    yield PlaybookError(
                        loaded.source,
                        loaded.lines.line_of(("ladder", i, "actions", j, "webhook", *where)),
                        f"webhook of '{action.id}' uses ${{{name}}}, which is not set: set it in the environment "
                        "(`check --no-env` skips this outside production)",
                    )


def load_checked(path: str | Path, *, env: bool = True) -> LoadedPlaybook:
    """Load a playbook for running it: every problem `check` would report stops it."""
    loaded, errors = check_file(Path(path), env=env)
    if errors or loaded is None:
        raise PlaybookInvalid(errors)
    return loaded
