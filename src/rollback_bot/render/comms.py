"""Communication templates live in `templates/comms/<name>.md.j2` and render in a sandbox."""

from __future__ import annotations

import traceback
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from rollback_bot.playbook.loader import LoadedPlaybook, PlaybookError


class TemplateProblem(Exception):
    """A template that cannot be found or raised while rendering (whatever it raised), said in one line;
    `path` is where in a rendered value (webhook body) the failing string is."""

    def __init__(
        self,
        message: str,
        path: tuple[str | int, ...] = (),
        *,
        file: str | None = None,
        line: int | None = None,
        what: str = "",
    ) -> None:
        super().__init__(message)
        self.path = path
        self.file, self.line, self.what = file, line, what  # the template file, its line, what failed there


def template_line(exc: Exception, filename: str | None) -> int | None:
    """The template's line that failed, where known."""
    if filename is None:
        return None
    line = exc.lineno if isinstance(exc, TemplateSyntaxError) else None
    for frame in traceback.extract_tb(exc.__traceback__):  # jinja2 rewrites frames to template lines
        if frame.filename == filename:
            line = frame.lineno
    return line


def problem_text(exc: Exception) -> str:
    what = str(exc) if isinstance(exc, TemplateError) else f"{type(exc).__name__}: {exc}"
    return what if len(what) <= 300 else what[:300] + "..."


def _problem(exc: Exception, filename: str | None) -> str:
    """'line 3: ZeroDivisionError: division by zero': where in the template, and what it raised."""
    line = template_line(exc, filename)
    return f"line {line}: {problem_text(exc)}" if line else problem_text(exc)


def _shown_value(value: Any) -> Any:
    """What `{{ x }}` prints: nothing known yet (None: not acknowledged, no next step) prints '-', not 'None'."""
    return "-" if value is None else value


@lru_cache(maxsize=16)
def _env(templates_dir: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(templates_dir),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        finalize=_shown_value,
    )


_STRING_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def template_name(comm: str) -> str:
    return f"comms/{comm}.md.j2"


def render_comms(templates_dir: Path, comm: str, context: dict[str, Any]) -> str:
    """The rendered draft; TemplateProblem for anything the template raises, never another exception."""
    try:
        return _env(str(templates_dir)).get_template(template_name(comm)).render(**context).strip()
    except TemplateNotFound:
        raise TemplateProblem(f"template {templates_dir / template_name(comm)} does not exist") from None
    except Exception as exc:  # a template may raise anything: ZeroDivisionError, RecursionError, bad UTF-8
        filename = str(templates_dir / template_name(comm))
        problem = f"template {template_name(comm)} does not render: {_problem(exc, filename)}"
        raise TemplateProblem(
            problem, file=filename, line=template_line(exc, filename), what=problem_text(exc)
        ) from None


def render_value(value: Any, context: dict[str, Any], path: tuple[str | int, ...] = ()) -> Any:
    """Render every string inside a JSON-like value (webhook bodies); TemplateProblem says which one."""
    if isinstance(value, str):
        try:
            return _STRING_ENV.from_string(value).render(**context)
        except Exception as exc:  # anything a template raises
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "value"
            filename = "<template>" if "\n" in value else None  # a line number only where there are lines
            raise TemplateProblem(f"{where} does not render: {_problem(exc, filename)}", path) from None
    if isinstance(value, dict):
        return {k: render_value(v, context, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context, (*path, i)) for i, v in enumerate(value)]
    return value


def shown_path(path: str) -> str:
    """A template's path as people type it: relative to the current folder when under it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def check_templates(loaded: LoadedPlaybook) -> list[PlaybookError]:
    """Every comms template exists and renders with a sample context; webhook bodies render too."""
    from rollback_bot.render.context import sample_context, webhook_context

    pb = loaded.playbook
    errors = []
    at_template: dict[tuple[str, int, str], list[str]] = {}  # one error per template line and problem: its uses
    for i, step in enumerate(pb.ladder):
        ctx = sample_context(pb, i)
        for j, comm in enumerate(step.comms):
            used_at = loaded.lines.line_of(("ladder", i, "comms", j))
            try:
                render_comms(loaded.templates_dir, comm, ctx)
            except TemplateProblem as exc:
                if exc.file is not None and exc.line is not None:  # said at the template's own line
                    at_template.setdefault((exc.file, exc.line, exc.what), []).append(f"{loaded.source}:{used_at}")
                else:
                    errors.append(PlaybookError(loaded.source, used_at, str(exc)))
        for j, action in enumerate(step.actions):
            hook_ctx = webhook_context(pb, 1, action.id, action.stage_list[0])
            for part in ("url", "body"):
                try:
                    render_value(getattr(action.webhook, part), hook_ctx, (part,))
                except TemplateProblem as exc:
                    line = loaded.lines.line_of(("ladder", i, "actions", j, "webhook", *exc.path))
                    errors.append(PlaybookError(loaded.source, line, f"webhook of '{action.id}': {exc}"))
    for (file, line, what), uses in at_template.items():
        errors.append(PlaybookError(shown_path(file), line, f"{what} (used at {', '.join(uses)})"))
    return errors
