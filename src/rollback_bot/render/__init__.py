"""Rendering: communication drafts and webhook bodies from sandboxed Jinja2 (undefined is an error)."""

from rollback_bot.render.comms import TemplateProblem, check_templates, render_comms, render_value

__all__ = ["TemplateProblem", "check_templates", "render_comms", "render_value"]
