"""The one message per rollout, kept current with chat.update: stage, time in stage, sample so far, the KPI of
candidate and baseline against the gate, what is worse by segment, the verdict and why, and the buttons that
are valid now. Each button carries the rollout and the stage it was shown for: an Advance or a Release meant
for a stage the rollout has left does nothing; Hold and Roll back act on the rollout as it is now."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ConfirmObject, HeaderBlock, PlainTextObject

from rollback_bot.flows.views import RolloutView
from rollback_bot.playbook.durations import format_duration
from rollback_bot.rollout.gate import Comparison, describe
from rollback_bot.slack.blocks import context, hhmm, section, who
from rollback_bot.slack.limits import MAX_BUTTON, MAX_HEADER, MAX_SECTION, Message, clip, esc

VERDICT = {
    "GO": ":large_green_circle: *GO*",
    "HOLD": ":double_vertical_bar: *HOLD*",
    "ROLLBACK": ":rewind: *ROLLBACK*",
    "NOT ENOUGH DATA": ":hourglass_flowing_sand: *NOT ENOUGH DATA*",
}
STATE = {"breach": ":x:", "warn": ":warning:", "uncertain": ":grey_question:", "nodata": ":grey_question:"}
WORSE_SHOWN = 8  # lines of "what is worse"; the rest are counted


def rollout_button(text: str, action_id: str, view: RolloutView, style: str | None = None) -> ButtonElement:
    ro = view.rollout
    confirm = None
    if action_id == "rollout_rollback":
        confirm = ConfirmObject(
            title="Roll back this rollout?",
            text=clip(f"Traffic of {ro.candidate} goes to 0% and an incident opens on the ladder.", 300),
            confirm="Roll back",
            deny="Cancel",
        )
    return ButtonElement(
        text=PlainTextObject(text=clip(text, MAX_BUTTON)),
        action_id=action_id,
        value=json.dumps({"r": ro.id, "s": ro.stage}, separators=(",", ":")),
        style=style,
        confirm=confirm,
    )


def rollout_buttons(view: RolloutView) -> list[Block]:
    """Only the buttons valid now: advance when the gate says GO, hold while running, release while held,
    roll back while under way. Who may press them is checked on arrival."""
    ro = view.rollout
    if not view.active:
        return []
    elements: list[ButtonElement] = []
    if ro.status == "running" and ro.verdict == "GO":
        nxt = view.next_stage
        label = f"Advance to {nxt.percent:g}%" if nxt is not None else f"Complete at {view.stage.percent:g}%"
        elements.append(rollout_button(label, "rollout_advance", view, style="primary"))
    if ro.status == "running":
        elements.append(rollout_button("Hold", "rollout_hold", view))
    else:
        elements.append(rollout_button("Release hold", "rollout_release", view))
    elements.append(rollout_button("Roll back", "rollout_rollback", view, style="danger"))
    return [ActionsBlock(block_id=f"rollout-{ro.id}", elements=elements)]


def _status_line(view: RolloutView) -> str:
    ro, spec = view.rollout, view.spec
    stage = f"stage {ro.stage + 1}/{len(spec.stages)} at *{view.stage.percent:g}%*"
    traffic = f"traffic {ro.traffic:g}% confirmed" if ro.traffic is not None else "traffic not confirmed yet"
    if ro.status == "complete":
        return f":white_check_mark: *Complete* at {view.stage.percent:g}% at {hhmm(ro.finished_at)}"
    if ro.status == "rolled_back":
        incident = f"; incident #{ro.incident_id} is on the ladder" if ro.incident_id else ""
        return f":rewind: *Rolled back* at {hhmm(ro.finished_at)} from {stage}{incident}"
    held = ""
    if ro.status == "held":
        by = "the gate" if ro.held_by == "gate" else who(ro.held_by)
        roles = " or ".join(spec.hold.requires)
        held = f"\n:double_vertical_bar: *Held* by {by}: {roles} investigate, then release"
    return f":arrows_counterclockwise: *Running*, {stage} ({traffic}){held}"


def _progress(view: RolloutView) -> str:
    """Time in stage and sample so far, as of the gate's last look, against the stage's minimums."""
    ro, d, stage = view.rollout, view.decision, view.stage
    if d is None:
        in_stage = format_duration(max(view.now - ro.stage_started_at, timedelta(0)))
        return (
            f"In stage {in_stage} (min {format_duration(stage.min_duration)}) \u00b7 "
            f"sample: waiting for the gate's first look (min {stage.min_sample:,})"
        )
    return (
        f"In stage {format_duration(d.in_stage)} (min {format_duration(d.min_duration)}) \u00b7 "
        f"sample {d.sample:,.0f} of {d.min_sample:,} \u00b7 as of {hhmm(ro.looked_at)}"
    )


def _kpi(view: RolloutView) -> str:
    """The weighted KPI of candidate and baseline, for the whole and each segment, against the gate."""
    gate = view.spec.gate
    if gate is None:
        return ""
    thresholds = f"candidate minus baseline; hold below {gate.hold_below:+g}, roll back below {gate.rollback_below:+g}"
    rows = [c for c in (view.decision.of("kpi") if view.decision else []) if c.candidate is not None]
    if not rows:
        return f"*KPI* ({thresholds}): no figures yet"
    rows.sort(key=lambda c: (c.segment != "", c.segment))
    lines = [f"{STATE.get(c.state, ':white_check_mark:')} {esc(describe(c))}" for c in rows[:WORSE_SHOWN]]
    return f"*KPI* ({thresholds})\n" + "\n".join(lines)


def _worse(rows: Sequence[Comparison]) -> str:
    if not rows:
        return "*What is worse:* nothing, in any segment"
    lines = [f"{STATE.get(c.state, '')} {c.kind}: {esc(describe(c))}" for c in rows[:WORSE_SHOWN]]
    if len(rows) > WORSE_SHOWN:
        lines.append(f"_and {len(rows) - WORSE_SHOWN} more (the timeline has them all)_")
    return "*What is worse, by segment:*\n" + "\n".join(lines)


def rollout_message(view: RolloutView) -> Message:
    ro, pb = view.rollout, view.playbook
    assert ro.id is not None
    title = f"Rollout #{ro.id} \u00b7 {pb.service}: {ro.candidate} vs {ro.baseline}"
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=clip(title, MAX_HEADER), emoji=True)),
        section(_status_line(view)),
    ]
    d = view.decision
    if view.active:
        blocks.append(section(_progress(view)))
        if d is not None:
            why = "\n".join(f"\u2022 {esc(w)}" for w in d.why[:5])
            blocks.append(section(f"Gate: {VERDICT.get(d.verdict, d.verdict)}\n{why}"))
            if kpi := _kpi(view):
                blocks.append(section(kpi))
            blocks.append(section(_worse(d.worse)))
            shown = [c for c in d.of("diagnostic") if c.candidate is not None]
            if shown:
                lines = ", ".join(esc(describe(c)) for c in shown[:6])
                blocks.append(context(clip(f"Diagnostics (shown, never decide): {lines}", MAX_SECTION)))
    elif ro.verdict:
        blocks.append(section(f"Last verdict: {VERDICT.get(ro.verdict, ro.verdict)} at {hhmm(ro.verdict_at)}"))
    blocks += rollout_buttons(view)
    stages = " \u2192 ".join(
        (f"*{s.percent:g}%*" if i == ro.stage else f"{s.percent:g}%") for i, s in enumerate(view.spec.stages)
    )
    blocks.append(
        context(
            f"stages {stages} \u00b7 playbook `{esc(pb.name)}` v{ro.playbook_version} \u00b7 started by "
            f"{who(ro.started_by)} {hhmm(ro.started_at)} \u00b7 updated {hhmm(view.now)} \u00b7 events in the thread"
        )
    )
    verdict = d.verdict if d is not None else (ro.verdict or "waiting")
    text = (
        f"Rollout #{ro.id} of {ro.candidate} ({pb.service}): {ro.status.replace('_', ' ')}, "
        f"stage {ro.stage + 1}/{len(view.spec.stages)} at {view.stage.percent:g}%, gate {verdict}"
    )
    return Message(text, blocks)


def status_line(view: RolloutView) -> str:
    """One rollout in `/rollback status`."""
    ro, d = view.rollout, view.decision
    verdict = VERDICT.get(d.verdict, d.verdict) if d is not None else "_waiting for the gate's first look_"
    why = f": {esc(d.why[0])}" if d is not None and d.why else ""
    held = ""
    if ro.status == "held":
        held = f" \u00b7 *held* by {'the gate' if ro.held_by == 'gate' else who(ro.held_by)}"
    return (
        f":arrows_counterclockwise: *Rollout #{ro.id}* `{esc(ro.playbook)}` {esc(ro.candidate)} vs "
        f"{esc(ro.baseline)}: stage {ro.stage + 1}/{len(view.spec.stages)} at {view.stage.percent:g}%{held}\n"
        f"Gate {verdict}{why}"
    )
