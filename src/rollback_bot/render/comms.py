"""Communication templates live in `templates/comms/<name>.md.j2` and render in a sandbox."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from rollback_bot.playbook.loader import LoadedPlaybook, PlaybookError


class TemplateProblem(Exception):
    pass


@lru_cache(maxsize=16)
def _env(templates_dir: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(templates_dir),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


_STRING_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def template_name(comm: str) -> str:
    return f"comms/{comm}.md.j2"


def render_comms(templates_dir: Path, comm: str, context: dict[str, Any]) -> str:
    try:
        return _env(str(templates_dir)).get_template(template_name(comm)).render(**context).strip()
    except TemplateNotFound:
        raise TemplateProblem(f"template {templates_dir / template_name(comm)} does not exist") from None
    except TemplateError as exc:
        raise TemplateProblem(f"template {template_name(comm)} does not render: {exc}") from None


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside a JSON-like value (webhook bodies)."""
    if isinstance(value, str):
        return _STRING_ENV.from_string(value).render(**context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


def check_templates(loaded: LoadedPlaybook) -> list[PlaybookError]:
    """Every comms template exists and renders with a sample context; webhook bodies render too."""
    from rollback_bot.render.context import sample_context, webhook_context

    pb = loaded.playbook
    errors = []
    for i, step in enumerate(pb.ladder):
        ctx = sample_context(pb, i)
        for j, comm in enumerate(step.comms):
            try:
                render_comms(loaded.templates_dir, comm, ctx)
            except TemplateProblem as exc:
                errors.append(PlaybookError(loaded.source, loaded.lines.line_of(("ladder", i, "comms", j)), str(exc)))
        for j, action in enumerate(step.actions):
            try:
                render_value(action.webhook.body, webhook_context(pb, 1, action.id, action.stage_list[0]))
                render_value(action.webhook.url, webhook_context(pb, 1, action.id, action.stage_list[0]))
            except TemplateError as exc:
                line = loaded.lines.line_of(("ladder", i, "actions", j, "webhook"))
                errors.append(PlaybookError(loaded.source, line, f"webhook of '{action.id}' does not render: {exc}"))
    return errors
