"""`rollback-bot check`: validate playbooks, the templates they reference and the environment they need."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rollback_bot.builtin import BuiltinMissing, builtin_templates
from rollback_bot.playbook.loader import LoadedPlaybook, PlaybookError, PlaybookInvalid, load_playbook
from rollback_bot.render.comms import check_templates, problem_text, shown_path, template_line
from rollback_bot.secrets import strings, unset_in


def default_playbooks() -> str:
    """Where playbooks are when none are named: playbooks/ where it exists (the repository), else the current
    folder (where `rollback-bot init` wrote one)."""
    return "playbooks" if Path("playbooks").is_dir() else "."


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
    errors = check_templates(loaded) + check_postmortem(loaded) + (list(unset_variables(loaded)) if env else [])
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


def postmortem_notes(loaded: LoadedPlaybook) -> list[str]:
    """A post-mortem template the playbook's folder lacks is no error (a team may keep only its comms
    drafts): exports use the built-in one, and `check` says so."""
    return [
        f"{shown_path(str(p))} not found: exports use the built-in post-mortem template"
        for p in _postmortems(loaded).values()
        if not _is_file(p)
    ]


def check_postmortem(loaded: LoadedPlaybook) -> list[PlaybookError]:
    """The post-mortem templates of the playbook's own (not the built-in ones, which the export tests render)
    render a sample incident; errors at the template's line."""
    own = {fmt: path for fmt, path in _postmortems(loaded).items() if _is_file(path) and not _is_builtin(path)}
    if not own:
        return []
    from rollback_bot.export.formats import TemplateFailed

    errors = []
    for fmt, exc in _render_sample(loaded, list(own)).items():
        path = own[fmt]
        if isinstance(exc, TemplateFailed):  # the export says where in the template, and what
            line, what = exc.line, exc.what
        else:
            line, what = template_line(exc, str(path)) or 1, problem_text(exc)
        errors.append(PlaybookError(shown_path(str(path)), line, f"post-mortem template does not render: {what}"))
    return errors


def _postmortems(loaded: LoadedPlaybook) -> dict[str, Path]:
    return {fmt: loaded.templates_dir / f"postmortem.{fmt}.j2" for fmt in ("md", "html")}


def _is_file(path: Path) -> bool:
    """Whether a file is there; False for a path no file can have (a name too long: the folder is said missing
    where the comms templates are looked for)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _is_builtin(path: Path) -> bool:
    try:
        builtin = builtin_templates() / path.name
    except BuiltinMissing:
        return False
    return builtin.is_file() and builtin.read_bytes() == path.read_bytes()


def _render_sample(loaded: LoadedPlaybook, fmts: list[str]) -> dict[str, Exception]:
    """Export a made-up incident of this playbook (opened, acknowledged, every step entered, resolved) in each
    of `fmts` with the playbook's templates, in a throwaway database; what each raised."""
    from rollback_bot.export import export_text
    from rollback_bot.flows.watch import new_incident
    from rollback_bot.store import audit
    from rollback_bot.store.database import Store

    pb = loaded.playbook
    trigger = next(iter(pb.triggers))
    opened = datetime(2026, 1, 1, 9, tzinfo=UTC)
    failed: dict[str, Exception] = {}
    with tempfile.TemporaryDirectory(prefix="rollback-check-") as tmp:
        store = Store(f"sqlite:///{tmp}/sample.db")
        try:
            with store.session() as s:
                incident = new_incident(
                    s,
                    loaded,
                    severity=pb.triggers[trigger].severity,
                    trigger=trigger,
                    summary=f"{trigger} fired (sample)",
                    evidence={},
                    now=opened,
                )
                incident.acknowledged_by, incident.acknowledged_at = "U0SAMPLE", opened + timedelta(minutes=5)
                incident.resolved_by, incident.resolved_at = "U0SAMPLE", opened + pb.duration
                incident.status = "resolved"
                n = incident.id
                audit.record(s, playbook=pb.name, incident_id=n, kind="incident.opened", at=opened, summary="opened")
                for i, step in enumerate(pb.ladder):
                    at = opened + step.start
                    details = {"step": i, "name": step.name, "window": step.window_text(), "target_at": at.isoformat()}
                    audit.record(
                        s,
                        playbook=pb.name,
                        incident_id=n,
                        kind="step.entered",
                        at=at,
                        summary=step.name,
                        details=details,
                    )
                s.commit()
            assert n is not None
            for fmt in fmts:
                try:
                    export_text(store, n, fmt, templates=loaded.templates_dir, with_charts=False)
                except Exception as exc:  # a template may raise anything
                    failed[fmt] = exc
        finally:
            store.close()
    return failed
