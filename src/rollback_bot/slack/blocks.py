"""Block Kit messages built with slack_sdk's models: the incident alert, thread updates, command replies."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from rollback_bot.flows.views import ActionView, IncidentView
from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import Playbook
from rollback_bot.rules.watch import WatchRow
from rollback_bot.slack.limits import MAX_BUTTON, MAX_HEADER, MAX_SECTION, Message, clip, esc
from rollback_bot.store.models import Event

SEVERITY = {"critical": ":rotating_light:", "major": ":warning:", "minor": ":large_yellow_circle:"}
MARK = {"ok": ":white_check_mark:", "breached": ":x:", "nodata": ":grey_question:"}
STAGE = {
    "succeeded": ":white_check_mark:",
    "running": ":hourglass_flowing_sand:",
    "failed": ":x:",
    "pending": ":white_circle:",
}


def section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, MAX_SECTION)))


def context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text, MAX_SECTION))])


def hhmm(at: datetime | None) -> str:
    return f"{at:%H:%M} UTC" if at else "-"


def _when(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def who(user: str | None) -> str:
    """A mention (Slack shows the person's current name); the name as we knew it is in the timeline."""
    return f"<@{user}>" if user else "?"


def value(v: object) -> str:
    """A reading as people read it: 4 significant digits (0.01414, not 0.01414158088658034)."""
    if v is None:
        return "no data"
    return f"{v:.4g}" if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def labelled(pb: Playbook, signal: str) -> str:
    """A signal's name, with its `label` when the playbook gives one: `p95_ms` (P95 latency)."""
    label = pb.signal_labels.get(signal)
    return f"`{esc(signal)}` ({esc(label)})" if label else f"`{esc(signal)}`"


def watch_lines(rows: Sequence[WatchRow], labels: Mapping[str, str | None] | None = None) -> str:
    """The step's watch list; `labels`: signal -> its `label` (the playbook's display name)."""
    if not rows:
        return "_no metrics to watch in this step_"
    lines = []
    for r in rows:
        label = (labels or {}).get(r.signal)
        shown = f" ({esc(label)})" if label else ""
        lines.append(f"{MARK[r.status]} `{esc(r.rule)}`{shown}: now *{value(r.value)}*")
    return "\n".join(lines)


def action_line(a: ActionView) -> str:
    got = [f":white_check_mark: {ap.role}: {who(ap.user)} {hhmm(ap.at)}" for ap in a.approvals]
    got += [f":hourglass: {role}" for role in a.missing]
    line = f"*{esc(a.spec.label)}* (needs {' + '.join(a.spec.requires)}): " + " \u00b7 ".join(got)
    if not a.missing:
        if a.spec.stages:
            line += "\n      stages: " + "  ".join(f"{STAGE[st]} {stage:g}%" for stage, st in a.stages)
        else:
            line += f"  {STAGE[a.stages[0][1]]} {a.stages[0][1]}"
    return line


def button(
    text: str,
    action_id: str,
    incident_id: int,
    style: str | None = None,
    confirm: ConfirmObject | None = None,
    action: str | None = None,
) -> ButtonElement:
    """A button carries only what it acts on; whether the click is still valid is decided on arrival,
    so an event that changes nothing visible (a denial) leaves the message as it is."""
    payload = {"i": incident_id} | ({"a": action} if action else {})
    return ButtonElement(
        text=PlainTextObject(text=clip(text, MAX_BUTTON)),
        action_id=action_id,
        value=json.dumps(payload, separators=(",", ":")),
        style=style,
        confirm=confirm,
    )


def buttons(view: IncidentView) -> list[Block]:
    """Only the buttons valid now."""
    inc = view.incident
    if not view.is_open:
        return []
    assert inc.id is not None
    i = inc.id
    first: list[ButtonElement] = []
    if inc.acknowledged_by is None:
        first.append(button("Acknowledge", "ack", i, style="primary"))
    for a in view.actions:
        if a.approvable:
            text = (
                f"{a.spec.label} needs {' + '.join(a.spec.requires)} (two different people)"
                if len(a.spec.requires) > 1
                else f"{a.spec.label} needs {a.spec.requires[0]}"
            )
            confirm = ConfirmObject(
                title="Approve this action?", text=clip(text, 300), confirm="Approve", deny="Cancel"
            )
            first.append(
                button(f"Approve: {a.spec.label}", f"approve:{a.spec.id}", i, confirm=confirm, action=a.spec.id)
            )
    if inc.held_by is None:
        first.append(button("Hold", "hold", i))
    else:
        first.append(button("Release hold", "release", i))
    resolve_confirm = ConfirmObject(
        title="Resolve the incident?", text="Closes it and resets the triggers.", confirm="Resolve", deny="Cancel"
    )
    first.append(button("Resolve", "resolve", i, style="danger", confirm=resolve_confirm))
    return [ActionsBlock(block_id=f"incident-{i}-{k}", elements=first[k : k + 5]) for k in range(0, len(first), 5)]


def alert(view: IncidentView) -> Message:
    """The one parent message per incident, kept current with chat.update."""
    inc, pb, pos = view.incident, view.playbook, view.position
    assert inc.id is not None
    title = f"{inc.severity.upper()} \u00b7 {pb.service} \u00b7 incident #{inc.id}"
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=clip(title, MAX_HEADER), emoji=True))]
    if pb.description:
        blocks.append(context(esc(pb.description)))
    if inc.status == "resolved":
        state = f":white_check_mark: *Resolved* by {who(inc.resolved_by)} at {hhmm(inc.resolved_at)}"
    elif inc.acknowledged_by:
        state = f":eyes: *Open*, acknowledged by {who(inc.acknowledged_by)} at {hhmm(inc.acknowledged_at)}"
    else:
        due = inc.opened_at + pb.acknowledge.within
        state = f":bell: *Open, not acknowledged* (acknowledge by {hhmm(due)})"
    if inc.held_by:
        state += f"\n:double_vertical_bar: *On hold* by {who(inc.held_by)} since {hhmm(inc.held_at)}"
    blocks.append(section(f"{SEVERITY.get(inc.severity, '')} {state}"))
    fired = ", ".join(
        f"{labelled(pb, str(e['signal']))} = *{value(e['value'])}*"
        + (f" ({esc(str(e['note']))})" if e.get("note") else "")
        for e in view.evidence
    )
    rule = str(inc.evidence.get("rule") or "")
    trigger = pb.triggers.get(inc.trigger)
    described = f" {esc(trigger.description)}:" if trigger is not None and trigger.description else ""
    what = f"*What fired:* `{esc(inc.trigger)}`{described} {esc(rule)}\n{fired}"
    since = _when(inc.evidence.get("since"))
    if since:
        what += f" \u00b7 since {hhmm(since)}"
    if view.attached:
        what += "\n*Also fired:* " + ", ".join(f"`{esc(t)}`" for t in dict.fromkeys(view.attached))
    blocks.append(section(what))
    if pos.step is not None and pos.index is not None:
        # absolute times: the message stays true without being re-sent every minute
        ends = inc.opened_at + pos.step.end
        number = f"{pos.index + 1}/{len(pb.ladder)}"
        step = f"*Step {number}: {esc(pos.step.name)}* ({pos.step.window_text()}, until {hhmm(ends)})"
        if pos.next_step is not None:
            step += f"\nNext: *{esc(pos.next_step.name)}* at {hhmm(ends)}"
    else:
        step = f"*Ladder complete* ({format_duration(pb.duration)}): resolve when satisfied"
    if inc.status == "resolved":  # where the ladder stood when it was resolved; nothing is next
        where = (
            f"step {pos.index + 1}/{len(pb.ladder)}: {esc(pos.step.name)}"
            if pos.step and pos.index is not None
            else None
        )
        step = (
            f"*Resolved during {where}*" if where else f"*Resolved after the ladder* ({format_duration(pb.duration)})"
        )
    blocks.append(section(step))
    blocks.append(section("*Watch*\n" + watch_lines(view.watch, pb.signal_labels)))
    if view.actions:
        blocks.append(section("*Actions*\n" + "\n".join(action_line(a) for a in view.actions)))
    blocks += buttons(view)
    blocks.append(
        context(
            f"playbook `{pb.name}` v{inc.playbook_version} \u00b7 opened {hhmm(inc.opened_at)} \u00b7 "
            f"updated {hhmm(view.now)} \u00b7 details in the thread"
        )
    )
    step_text = (
        f"step {pos.index + 1}/{len(pb.ladder)} {pos.step.name}"
        if pos.step and pos.index is not None
        else ("ladder complete")
    )
    text = f"[{inc.severity.upper()}] {pb.service} incident #{inc.id} ({inc.status}): {inc.trigger}, {step_text}"
    return Message(text, blocks)


EVENT_ICON = {
    "signal.fired": ":chart_with_upwards_trend:",
    "trigger.attached": ":heavy_plus_sign:",
    "signal.cleared": ":chart_with_downwards_trend:",
    "signal.lost": ":satellite_antenna:",
    "signal.restored": ":satellite_antenna:",
    "signal.silent": ":mute:",
    "signal.stale": ":hourglass:",
    "alert.firing": ":rotating_light:",
    "alert.resolved": ":large_green_circle:",
    "polling.behind": ":warning:",
    "polling.restored": ":white_check_mark:",
    "trigger.blind": ":see_no_evil:",
    "trigger.sighted": ":eye:",
    "kpi.hold": ":double_vertical_bar:",
    "ack": ":eyes:",
    "ack.denied": ":no_entry:",
    "approval": ":ballot_box_with_check:",
    "approval.denied": ":no_entry:",
    "approval.duplicate": ":repeat:",
    "action.started": ":gear:",
    "action.succeeded": ":white_check_mark:",
    "action.failed": ":x:",
    "note": ":memo:",
    "reminder": ":alarm_clock:",
    "approval.lapsed": ":hourglass:",
    "incident.held": ":double_vertical_bar:",
    "incident.released": ":arrow_forward:",
    "incident.resolved": ":white_check_mark:",
    "ladder.completed": ":checkered_flag:",
    "incident.opened": ":rotating_light:",
    "panic.passed": ":large_green_circle:",
    "panic.failed": ":red_circle:",
    "panic.missed": ":warning:",
    "panic.acknowledged": ":eyes:",
    "panic.reminder": ":alarm_clock:",
    "panic.denied": ":no_entry:",
}


def thread_event(ev: Event) -> Message:
    """One timeline event as a thread reply."""
    icon = EVENT_ICON.get(ev.kind, ":information_source:")
    if ev.kind == "step.entered":
        return step_entered(ev)
    text = f"{icon} {esc(ev.summary)}"
    mentions = " ".join(f"<@{u}>" for u in ev.details.get("mentions", []))
    if ev.kind == "reminder":
        text = f"{icon} *Reminder:* {esc(ev.details.get('text', ev.summary))}\n{mentions}".rstrip()
    elif ev.kind == "approval.lapsed":
        text = f"{icon} *Approval lapsed:* {esc(ev.summary)}\n{mentions}".rstrip()
    elif ev.kind in ("panic.failed", "panic.reminder"):
        text = f"{icon} {esc(ev.summary)}\n{mentions}".rstrip()
    blocks: list[Block] = [section(text), context(f"{ev.kind} \u00b7 {hhmm(ev.at)}")]
    run = ev.details.get("run")
    if ev.kind in ("panic.failed", "panic.reminder") and type(run) is int:
        ack = ButtonElement(
            text=PlainTextObject(text="Acknowledge"),
            action_id="panic_ack",
            value=json.dumps({"p": run}, separators=(",", ":")),
            style="primary",
        )
        blocks.insert(1, ActionsBlock(block_id=f"panic-{run}", elements=[ack]))
    return Message(f"{ev.summary}", blocks)


def step_entered(ev: Event) -> Message:
    d = ev.details
    number = f"{d['step'] + 1}: " if isinstance(d.get("step"), int) else ""
    title = f":footprints: *Entered step {number}{esc(str(d.get('name', '')))}* ({esc(str(d.get('window', '')))})"
    if d.get("skipped"):
        title += f"; skipped while the bot was down: {esc(', '.join(map(str, d['skipped'])))}"
    if d.get("late_by_seconds", 0) >= 60:
        title += f" \u00b7 {d['late_by']} after its start"
    watched = d.get("watch", [])
    rows = [WatchRow(w["signal"], w["rule"], w["value"], w["status"]) for w in watched]
    labels = {str(w["signal"]): w.get("label") for w in watched}
    blocks: list[Block] = [section(title), section("*Watch*\n" + watch_lines(rows, labels))]
    if d.get("actions"):
        blocks.append(
            section(
                "*Actions in this step*\n"
                + "\n".join(f"\u2022 {esc(a['label'])}: needs {' + '.join(a['requires'])}" for a in d["actions"])
            )
        )
    for name, draft in d.get("comms", {}).items():
        blocks.append(DividerBlock())
        blocks.append(section(f"*Draft: {esc(name)}* (ready to send)\n{draft}"))
    return Message(ev.summary, blocks)


def reply(text: str) -> Message:
    return Message(text, [section(text)])


HELD = " \u00b7 *on hold*"


def status(
    views: Sequence[IncidentView], note: str = "", rollouts: Sequence[str] = (), alerts: Sequence[str] = ()
) -> Message:
    """Every open incident the asker may see, then the pre-launch alerts waiting for an acknowledgement and
    every rollout under way (one line each, already rendered); `note` says what was left out and why."""
    if not views and not rollouts and not alerts:
        return reply(esc(note) if note else ":white_check_mark: No open incidents, no rollouts under way.")
    blocks: list[Block] = [section(f"*{len(views)} open incident(s)*" if views else "No open incidents.")]
    if note:
        blocks.append(context(esc(note)))
    if alerts:
        blocks.append(DividerBlock())
        blocks.append(
            section(f"*{len(alerts)} pre-launch alert(s) waiting for an acknowledgement*\n" + "\n".join(alerts))
        )
    if rollouts:
        blocks.append(DividerBlock())
        blocks.append(section(f"*{len(rollouts)} rollout(s) under way*\n" + "\n".join(rollouts)))
    for view in views:
        inc, pos = view.incident, view.position
        step = (
            f"step {pos.index + 1}/{len(view.playbook.ladder)} *{esc(pos.step.name)}*, "
            f"{format_duration(pos.time_left or pos.elapsed)} left"
            if pos.step and pos.index is not None
            else "ladder complete"
        )
        pending = [f"{esc(a.spec.label)} (needs {', '.join(a.missing)})" for a in view.actions if a.missing]
        acked = f"acknowledged by {who(inc.acknowledged_by)}" if inc.acknowledged_by else ("*not acknowledged*")
        metrics = ", ".join(f"{MARK[r.status]} {esc(r.signal)}={value(r.value)}" for r in view.watch)
        blocks.append(DividerBlock())
        blocks.append(
            section(
                f"{SEVERITY.get(inc.severity, '')} *#{inc.id}* `{esc(inc.playbook)}` {inc.severity}: {step}\n"
                f"{acked}{HELD if inc.held_by else ''}\n"
                f"Pending approvals: {'; '.join(pending) if pending else 'none'}\n"
                f"Key metrics: {metrics or 'none in this step'}"
            )
        )
    return Message(f"{len(views)} open incident(s), {len(rollouts)} rollout(s) under way", blocks)


def playbook_table(pb: Playbook) -> Message:
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=clip(f"Playbook {pb.name} ({pb.service})", MAX_HEADER)))
    ]
    for i, step in enumerate(pb.ladder, 1):
        watch = "\n".join(f"\u2022 `{esc(str(c))}`" for c in step.watch) or "\u2022 (nothing)"
        actions = (
            "\n".join(
                f"\u2022 {esc(a.label)} [{a.id}]: {' + '.join(a.requires)}"
                + (f", stages {', '.join(f'{s:g}%' for s in a.stages)}" if a.stages else "")
                for a in step.actions
            )
            or "\u2022 (none)"
        )
        blocks.append(
            section(
                f"*{i}. {esc(step.name)}* ({step.window_text()})\n*Watch:*\n{watch}\n"
                f"*Actions (who may approve):*\n{actions}"
            )
        )
    triggers = "\n".join(f"\u2022 `{esc(n)}` ({t.severity}): {esc(t.describe())}" for n, t in pb.triggers.items())
    blocks.append(section(f"*Triggers*\n{triggers}"))
    return Message(f"Playbook {pb.name}: {len(pb.ladder)} steps", blocks)


HELP = """*/rollback* commands:
\u2022 `/rollback status`: every open incident (step and time left, pending approvals, key metrics) and rollout
\u2022 `/rollback ack [INCIDENT]`: acknowledge
\u2022 `/rollback timeline [INCIDENT]`: the event log
\u2022 `/rollback playbook NAME`: steps, windows, metrics to watch, actions and who may approve
\u2022 `/rollback note [INCIDENT] TEXT`: add a note to the timeline
\u2022 `/rollback hold [INCIDENT]` / `/rollback release [INCIDENT]`: stop the ladder's actions / let them go on
\u2022 `/rollback resolve [INCIDENT]`: resolve
\u2022 `/rollback rollout`: rollouts under way; `/rollback rollout start PLAYBOOK`;
   `/rollback rollout advance|hold|release|rollback [ROLLOUT]`
\u2022 `/rollback ack-panic [ALERT]`: acknowledge a pre-launch alert (a failed daily panic run)
\u2022 `/rollback help`: this list
INCIDENT, ROLLOUT and ALERT are numbers (`12` or `#12`); with only one open or under way you may leave it out."""


def help_message(prefix: str = "") -> Message:
    return reply((prefix + "\n\n" if prefix else "") + HELP)
