"""`/rollback` text -> what to do, and the reply. Any input gets a helpful answer, never an error. Reads are
gated like actions (flows/access.py); the timeline upload, which takes seconds, is returned as work for after
the reply, at most once per incident every EXPORT_EVERY."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from rollback_bot import flows
from rollback_bot.directory import check_roles
from rollback_bot.flows import panic as flows_panic
from rollback_bot.flows import rollout as flows_rollout
from rollback_bot.flows.access import Asker, may_read
from rollback_bot.flows.deps import Deps, Outcome
from rollback_bot.flows.views import build_rollout_view, incident_view
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.slack import blocks
from rollback_bot.slack.limits import Message, esc
from rollback_bot.slack.rollout_message import status_line
from rollback_bot.store import panic as store_panic
from rollback_bot.store import rollouts as store_rollouts
from rollback_bot.store.audit import DENIED
from rollback_bot.store.incidents import claim_export, event_counts, open_incidents
from rollback_bot.store.models import Incident

VERBS = (
    "status", "ack", "ack-panic", "timeline", "playbook", "note", "resolve", "hold", "release", "rollout", "help",
)  # fmt: skip
_REF = re.compile(r"^#?([0-9]{1,30})\Z")
MAX_ID = 2**31 - 1  # incident numbers above this do not exist (and must not reach the database)
EXPORT_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class Export:
    """Put the timeline's post-mortem draft (and charts) in the incident's thread, after the reply."""

    incident_id: int
    channel: str
    thread_ts: str | None
    summary: str  # what the asker is told once the file is there


@dataclass(frozen=True)
class Reply:
    message: Message
    export: Export | None = None


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
    if verb in ("status", "help", "playbook", "rollout"):
        return Parsed(verb, rest=rest)
    first, _, after = rest.partition(" ")
    m = _REF.match(first)
    if m:
        return Parsed(verb, int(m.group(1)), after.strip())
    return Parsed(verb, None, rest)


def handle(deps: Deps, playbooks: dict[str, LoadedPlaybook], text: str, asker: Asker) -> Reply:
    parsed = parse(text)
    if parsed.verb == "help":
        return Reply(blocks.help_message())
    if parsed.verb == "unknown":
        return Reply(blocks.help_message(f"I don't know `{esc(parsed.rest[:80])}`."))
    if parsed.verb == "status":
        return Reply(_status(deps, playbooks, asker))
    if parsed.verb == "rollout":
        return Reply(_rollout(deps, playbooks, parsed.rest, asker))
    if parsed.verb == "playbook":
        return Reply(_playbook(deps, playbooks, parsed.rest.strip(), asker))
    if parsed.verb == "ack-panic":
        if parsed.rest:
            return Reply(
                blocks.reply(f"`{esc(parsed.rest[:40])}` is not an alert number, e.g. `/rollback ack-panic 3`.")
            )
        return Reply(_said(flows_panic.acknowledge(deps, playbooks, asker.user, parsed.incident)))
    if parsed.verb == "note" and not parsed.rest:
        return Reply(blocks.reply("A note needs some text: `/rollback note [INCIDENT] TEXT`."))
    picked = _pick(deps, parsed)
    if isinstance(picked, Message):
        return Reply(picked)
    if parsed.verb == "timeline":
        return _timeline(deps, picked, asker)
    if parsed.verb == "note":
        refused = may_read(deps, deps.snapshot(picked).playbook, asker, "add a note to", picked)
        if refused:
            return Reply(_said(refused))
    assert picked.id is not None
    incident_id, user = picked.id, asker.user
    verbs = {
        "ack": lambda: flows.acknowledge(deps, incident_id, user),
        "resolve": lambda: flows.resolve(deps, incident_id, user),
        "hold": lambda: flows.hold(deps, incident_id, user),
        "release": lambda: flows.release(deps, incident_id, user),
        "note": lambda: flows.add_note(deps, incident_id, user, parsed.rest),
    }
    return Reply(_said(verbs[parsed.verb]()))


def _said(outcome: Outcome) -> Message:
    text = outcome.message[:1].upper() + outcome.message[1:]
    return blocks.reply(("" if outcome.ok else ":no_entry: ") + esc(text))


def _pick(deps: Deps, parsed: Parsed) -> Incident | Message:
    """The incident named, or the only open one; otherwise a reply that says how to name one."""
    with deps.store.session() as s:
        if parsed.incident is not None:
            incident = s.get(Incident, parsed.incident) if parsed.incident <= MAX_ID else None
            if incident is None:
                return blocks.reply(f"There is no incident #{parsed.incident}. `/rollback status` lists the open ones.")
            return incident
        found = open_incidents(s)
    if len(found) == 1:
        return found[0]
    hint = f"`/rollback {parsed.verb} {found[0].id if found else 12}`"
    if not found:
        return blocks.reply(f"There is no open incident. Name one by its number, e.g. {hint}.")
    names = ", ".join(f"#{i.id} ({esc(i.playbook)})" for i in found)
    return blocks.reply(f"Several incidents are open: {names}. Say which, e.g. {hint}.")


def _status(deps: Deps, playbooks: dict[str, LoadedPlaybook], asker: Asker) -> Message:
    with deps.store.session() as s:
        found = open_incidents(s)
    views, hidden = [], []
    for incident in found:
        assert incident.id is not None
        refused = may_read(deps, deps.snapshot(incident).playbook, asker, "see the status of", incident)
        if refused:
            hidden.append(refused.message)
            continue
        if (view := incident_view(deps, incident.id)) is not None:
            views.append(view)
    rollouts, rollouts_hidden = _rollout_lines(deps, playbooks, asker)
    alerts, alerts_hidden = _alert_lines(deps, playbooks, asker)
    notes = [
        f"{len(refused)} {what} not shown to you: {' '.join(dict.fromkeys(refused))}"
        for what, refused in (
            ("open incident(s)", hidden),
            ("pre-launch alert(s)", alerts_hidden),
            ("rollout(s)", rollouts_hidden),
        )
        if refused
    ]
    note = " ".join(notes)
    return blocks.status(views, note=note, rollouts=rollouts, alerts=alerts)


def _alert_lines(deps: Deps, playbooks: dict[str, LoadedPlaybook], asker: Asker) -> tuple[list[str], list[str]]:
    """One line per failed panic run not acknowledged yet that the asker may see; the refusals for the rest."""
    lines, hidden = [], []
    with deps.store.session() as s:
        waiting = store_panic.unacknowledged(s, playbooks=list(playbooks))
    for run in waiting:
        refused = may_read(deps, playbooks[run.playbook].playbook, asker, "see the status of")
        if refused:
            hidden.append(refused.message)
            continue
        lines.append(
            f":red_circle: *#{run.id}* `{esc(run.playbook)}` panic run of {run.day} failed: {esc(run.summary)}; "
            f"acknowledge: `/rollback ack-panic {run.id}`"
        )
    return lines, hidden


def _rollout_lines(deps: Deps, playbooks: dict[str, LoadedPlaybook], asker: Asker) -> tuple[list[str], list[str]]:
    """One line per rollout under way that the asker may see; the refusals for the rest."""
    lines, hidden = [], []
    with deps.store.session() as s:
        for ro in store_rollouts.under_way(s):
            loaded = playbooks.get(ro.playbook)
            if loaded is None or loaded.playbook.rollout is None:
                continue
            refused = may_read(deps, loaded.playbook, asker, "see the status of")
            if refused:
                hidden.append(refused.message)
                continue
            lines.append(status_line(build_rollout_view(s, ro, loaded.playbook, deps.now())))
    return lines, hidden


def _rollout(deps: Deps, playbooks: dict[str, LoadedPlaybook], rest: str, asker: Asker) -> Message:
    """`/rollback rollout [start PLAYBOOK | advance|hold|release|rollback [ROLLOUT]]`."""
    words = rest.split()
    if not words:
        lines, hidden = _rollout_lines(deps, playbooks, asker)
        if not lines:
            note = f" ({len(hidden)} not shown to you: {hidden[0]})" if hidden else ""
            return blocks.reply(f"No rollout under way{esc(note)}. Start one: `/rollback rollout start PLAYBOOK`.")
        return blocks.status([], rollouts=lines)
    verb = words[0].lower()
    names = sorted(n for n, lp in playbooks.items() if lp.playbook.rollout is not None)
    if verb == "start":
        name = words[1] if len(words) > 1 else (names[0] if len(names) == 1 else "")
        if name not in names:
            known = ", ".join(f"`{n}`" for n in names) or "none"
            asked = f"No playbook with a rollout named `{esc(name)}`." if name else "Which playbook?"
            return blocks.reply(f"{asked} Playbooks with a rollout: {known}.")
        return _said(flows_rollout.start(deps, playbooks[name], asker.user))
    if verb not in flows_rollout.VERBS:
        return blocks.reply(
            f"I don't know `rollout {esc(verb[:40])}`. Try `/rollback rollout start PLAYBOOK` or "
            "`/rollback rollout advance|hold|release|rollback [ROLLOUT]`."
        )
    rollout_id: int | None = None
    if len(words) > 1:
        m = _REF.match(words[1])
        if m is None or int(m.group(1)) > MAX_ID:
            return blocks.reply(f"`{esc(words[1][:40])}` is not a rollout number, e.g. `/rollback rollout {verb} 3`.")
        rollout_id = int(m.group(1))
    else:
        with deps.store.session() as s:
            going = [ro.id for ro in store_rollouts.under_way(s) if ro.playbook in names]
        if len(going) != 1:
            which = ", ".join(f"#{i}" for i in going) or "none under way"
            return blocks.reply(f"Say which rollout ({which}), e.g. `/rollback rollout {verb} 3`.")
        rollout_id = going[0]
    assert rollout_id is not None
    return _said(flows_rollout.act(deps, playbooks, rollout_id, verb, asker.user))


def _playbook(deps: Deps, playbooks: dict[str, LoadedPlaybook], name: str, asker: Asker) -> Message:
    if name in playbooks:
        pb = playbooks[name].playbook
        refused = may_read(deps, pb, asker, "view the playbook")
        return _said(refused) if refused else blocks.playbook_table(pb)
    mine = sorted(n for n, lp in playbooks.items() if check_roles(lp.playbook, asker.user, deps.directory).held)
    known = ", ".join(f"`{n}`" for n in mine) or "none in which you hold a role"
    asked = f"No playbook named `{esc(name)}`." if name else "Which playbook?"
    return blocks.reply(f"{asked} Known: {known}.")


def _timeline(deps: Deps, incident: Incident, asker: Asker) -> Reply:
    """A short summary now; the Markdown post-mortem draft (and charts) in the incident's thread after the reply,
    once per EXPORT_EVERY per incident (later asks are pointed at the last one)."""
    assert incident.id is not None
    refused = may_read(deps, deps.snapshot(incident).playbook, asker, "export the timeline of", incident)
    if refused:
        return Reply(_said(refused))
    now = deps.now()
    with deps.store.session() as s:
        counts = event_counts(s, incident_id=incident.id)
        claimed = claim_export(s, incident_id=incident.id, by=asker.user, now=now, every=EXPORT_EVERY)
        s.commit()
        if not claimed:
            fresh = s.get(Incident, incident.id)
            assert fresh is not None
            incident = fresh
    total = sum(counts.values())
    name = f"incident-{incident.id}-postmortem.md"
    state = "still open" if incident.status == "open" else f"resolved {incident.resolved_at:%Y-%m-%d %H:%M} UTC"
    refusals = sum(n for kind, n in counts.items() if kind in DENIED)
    summary = (
        f"*Incident #{incident.id}* ({esc(incident.playbook)}, {incident.severity}, {state}): {total} events, "
        f"{counts.get('approval', 0)} approval(s), {refusals} refusal(s), "
        f"{counts.get('action.succeeded', 0)} action stage(s) done, {counts.get('action.failed', 0)} failed."
    )
    if not claimed:
        ago = (now - incident.exported_at).total_seconds() / 60 if incident.exported_at else 0.0
        by = blocks.who(incident.exported_by)
        where = f": {incident.export_link}" if incident.export_link else " (being uploaded now)"
        again = (incident.exported_at + EXPORT_EVERY) if incident.exported_at else now
        text = (
            f"{summary} The post-mortem draft was put in the incident's thread {ago:.0f} min ago by {by}{where}. "
            f"A new one can be made from {blocks.hhmm(again)}."
        )
        return Reply(blocks.reply(text))
    assert incident.id is not None
    export = Export(
        incident_id=incident.id,
        channel=incident.slack_channel or asker.channel_id,
        thread_ts=incident.slack_ts,
        summary=f"{summary} The post-mortem draft ({name}) is in the incident's thread.",
    )
    return Reply(blocks.reply(f"{summary} Putting the post-mortem draft ({name}) in the incident's thread."), export)
