"""The /rollback slash command. The reply rides on the acknowledgement itself (no Slack call needed); an
export is uploaded after it, by the runtime's worker."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from slack_bolt import Ack, App

from rollback_bot.export import export_text
from rollback_bot.export.formats import TemplateFailed
from rollback_bot.flows.access import Asker
from rollback_bot.slack import inbound
from rollback_bot.slack.commands import Export, handle
from rollback_bot.slack.runtime import SlackRuntime
from rollback_bot.store.incidents import finish_export

log = logging.getLogger(__name__)


def register(app: App, rt: SlackRuntime) -> None:
    @app.command("/rollback")
    def rollback(ack: Ack, body: dict[str, Any]) -> None:
        try:
            cmd = inbound.command(body)  # checked already over HTTP; Socket Mode delivers unchecked
        except inbound.Rejected as exc:
            ack(response_type="ephemeral", text=f"I could not read that command: {exc.reason}")
            return
        asker = Asker(cmd.user_id, cmd.channel_id, cmd.channel_name)
        reply = handle(rt.deps, rt.playbooks, cmd.text, asker)
        ack(response_type="ephemeral", **reply.message.payload())
        if reply.export is not None:
            export = reply.export
            rt.replies(lambda: upload(rt, export, cmd))


def upload(rt: SlackRuntime, export: Export, cmd: inbound.Command) -> None:
    """Build the post-mortem draft and its charts, put them in the incident's thread, tell the asker; a failure
    is said to the asker and logged, never dropped."""
    name = f"incident-{export.incident_id}-postmortem.md"
    link: str | None = None
    try:
        text, charts = export_text(rt.deps.store, export.incident_id, "md", out=Path(name))
    except Exception as exc:  # a template that does not render, a bad row: asking again would not help
        log.error("post-mortem draft of incident %s could not be built: %s", export.incident_id, exc, exc_info=True)
        if isinstance(exc, TemplateFailed):  # where in the template (its folder is the bot's, not the asker's)
            why = f"{Path(exc.filename).name} line {exc.line}: {exc.what}"
        else:
            why = f"{type(exc).__name__}: {exc}"
        said = (
            f":no_entry: Could not build the post-mortem draft of incident #{export.incident_id} "
            f"({why[:300]}). `rollback-bot check` on its playbook checks its templates."
        )
    else:
        try:
            files = [(name, text.encode()), *charts.items()]
            answer = rt.client.files_upload_v2(
                channel=export.channel,
                thread_ts=export.thread_ts,
                title=f"Timeline of incident #{export.incident_id}",
                initial_comment=f"Post-mortem draft for incident #{export.incident_id} (timeline hash in the file).",
                file_uploads=[{"filename": n, "content": data, "title": n} for n, data in files],
            )
            first = (answer.get("files") or [{}])[0]
            link = str(first.get("permalink") or f"file {first.get('id', name)} in the incident's thread")
            said = export.summary
        except Exception as exc:  # the reply already went out; say what failed, never drop it silently
            log.warning("timeline upload of incident %s failed: %s", export.incident_id, exc)
            said = f":no_entry: Could not put the timeline in the incident's thread ({type(exc).__name__}); ask again."
    with rt.deps.store.session() as s:
        finish_export(s, incident_id=export.incident_id, link=link)
        s.commit()
    rt.tell(cmd.user_id, cmd.channel_id, said, response_url=cmd.response_url)
