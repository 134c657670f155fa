"""`/rollback` text -> what to do, and the reply. Any input gets a helpful answer, never an error."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import func, select

from rollback_bot import flows
from rollback_bot.export import export_text
from rollback_bot.flows.deps import Deps
from rollback_bot.flows.views import incident_view
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.slack import blocks
from rollback_bot.slack.limits import Message, esc
from rollback_bot.store.incidents import open_incidents
from rollback_bot.store.models import Event, Incident

VERBS = ("status", "ack", "timeline", "playbook", "note", "resolve", "hold", "release", "help")
_REF = re.compile(r"^#?(\d+)$")


@dataclass(frozen=True)
class Upload:
    """Files to put in an incident's thread (the timeline's post-mortem draft and its charts)."""

    channel: str
    thread_ts: str | None
    files: list[tuple[str, bytes]]  # (filename, content)
    title: str
    comment: str


@dataclass(frozen=True)
class Reply:
    message: Message
    upload: Upload | None = None


@dataclass(frozen=True)
class Parsed:
    verb: str  # one of VERBS, or "unknown"
    incident: int | None = None
    rest: str = ""


def parse(text: str) -> Parsed:
    words = text.strip().split(maxsplit=1)
    if not words:
        return Parsed("help")
    verb = words[0].lower().lstrip("/")
    rest = words[1].strip() if len(words) > 1 else ""
    if verb not in VERBS:
        return Parsed("unknown", rest=text.strip())
    if verb in ("status", "help", "playbook"):
        return Parsed(verb, rest=rest)
    first, _, after = rest.partition(" ")
    m = _REF.match(first)
    if m:
        return Parsed(verb, int(m.group(1)), after.strip())
    return Parsed(verb, None, rest)


def _open_ids(deps: Deps) -> list[tuple[int, str]]:
    with deps.store.session() as s:
        return [(i.id, i.playbook) for i in open_incidents(s) if i.id is not None]


def _pick(deps: Deps, parsed: Parsed, verb_hint: str) -> int | Message:
    if parsed.incident is not None:
        return parsed.incident
    open_ids = _open_ids(deps)
    if len(open_ids) == 1:
        return open_ids[0][0]
    if not open_ids:
        return blocks.reply(f"There is no open incident. Name one by its number, e.g. `/rollback {verb_hint} 12`.")
    names = ", ".join(f"#{i} ({esc(p)})" for i, p in open_ids)
    return blocks.reply(
        f"Several incidents are open: {names}. Say which, e.g. `/rollback {verb_hint} {open_ids[0][0]}`."
    )


def handle(deps: Deps, playbooks: dict[str, LoadedPlaybook], text: str, user: str, channel: str = "") -> Reply:
    parsed = parse(text)
    if parsed.verb == "timeline":
        picked = _pick(deps, parsed, "timeline")
        if isinstance(picked, Message):
            return Reply(picked)
        return timeline_reply(deps, picked, channel)
    return Reply(answer(deps, playbooks, text, user))


def timeline_reply(deps: Deps, incident_id: int, channel: str) -> Reply:
    """A short summary here; the Markdown post-mortem draft (and charts) in the incident's thread."""
    with deps.store.session() as s:
        incident = s.get(Incident, incident_id)
        if incident is None:
            return Reply(blocks.reply(f"There is no incident #{incident_id}. `/rollback status` lists the open ones."))
        counts = dict(
            s.exec(select(Event.kind, func.count()).where(Event.incident_id == incident_id).group_by(Event.kind)).all()
        )
    total = sum(counts.values())
    name = f"incident-{incident_id}-postmortem.md"
    text, charts = export_text(deps.store, incident_id, "md", out=Path(name))
    files = [(name, text.encode()), *charts.items()]
    state = "still open" if incident.status == "open" else f"resolved {incident.resolved_at:%Y-%m-%d %H:%M} UTC"
    refusals = counts.get("approval.denied", 0) + counts.get("ack.denied", 0)
    summary = (
        f"*Incident #{incident_id}* ({esc(incident.playbook)}, {incident.severity}, {state}): {total} events, "
        f"{counts.get('approval', 0)} approval(s), {refusals} refusal(s), "
        f"{counts.get('action.succeeded', 0)} action stage(s) done, {counts.get('action.failed', 0)} failed. "
        f"The post-mortem draft ({name}) is in the incident's thread."
    )
    upload = Upload(
        channel=incident.slack_channel or channel,
        thread_ts=incident.slack_ts,
        files=files,
        title=f"Timeline of incident #{incident_id}",
        comment=f"Post-mortem draft for incident #{incident_id} ({total} events; timeline hash in the file).",
    )
    return Reply(blocks.reply(summary), upload)


def answer(deps: Deps, playbooks: dict[str, LoadedPlaybook], text: str, user: str) -> Message:
    parsed = parse(text)
    if parsed.verb == "help":
        return blocks.help_message()
    if parsed.verb == "unknown":
        shown = esc(parsed.rest[:80])
        return blocks.help_message(f"I don't know `{shown}`.")
    if parsed.verb == "status":
        views = [v for i, _ in _open_ids(deps) if (v := incident_view(deps, i)) is not None]
        return blocks.status(views)
    if parsed.verb == "playbook":
        name = parsed.rest.strip()
        if name in playbooks:
            return blocks.playbook_table(playbooks[name].playbook)
        known = ", ".join(f"`{n}`" for n in sorted(playbooks)) or "none loaded"
        asked = f"No playbook named `{esc(name)}`." if name else "Which playbook?"
        return blocks.reply(f"{asked} Known: {known}.")
    if parsed.verb == "note" and parsed.incident is None and not parsed.rest:
        return blocks.reply("A note needs some text: `/rollback note [INCIDENT] TEXT`.")
    picked = _pick(deps, parsed, parsed.verb)
    if isinstance(picked, Message):
        return picked
    if not _exists(deps, picked):
        return blocks.reply(f"There is no incident #{picked}. `/rollback status` lists the open ones.")
    if parsed.verb == "note" and not parsed.rest:
        return blocks.reply("A note needs some text: `/rollback note [INCIDENT] TEXT`.")
    actions = {
        "ack": lambda: flows.acknowledge(deps, picked, user),
        "resolve": lambda: flows.resolve(deps, picked, user),
        "hold": lambda: flows.hold(deps, picked, user),
        "release": lambda: flows.release(deps, picked, user),
        "note": lambda: flows.add_note(deps, picked, user, parsed.rest),
    }
    outcome = actions[parsed.verb]()
    return blocks.reply(("" if outcome.ok else ":no_entry: ") + esc(outcome.message[:1].upper() + outcome.message[1:]))


def _exists(deps: Deps, incident_id: int) -> bool:
    with deps.store.session() as s:
        return s.get(Incident, incident_id) is not None
