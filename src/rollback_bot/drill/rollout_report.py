"""The rollout drill's report, read from the timeline: each stage's verdicts in order and its timing, then
whether the gate held where the fault was (naming its segment) and nowhere else, and the rollout completed
by the deadline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rollback_bot.drill.console import hhmm
from rollback_bot.drill.rollout_sandbox import Scenario
from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import Playbook
from rollback_bot.store.models import Event

WRONG = ("HOLD", "ROLLBACK")


@dataclass
class StageRun:
    """One stage as the timeline tells it."""

    percent: float
    entered: datetime | None = None
    verdicts: list[Event] = field(default_factory=list)
    held: list[datetime] = field(default_factory=list)
    released: list[datetime] = field(default_factory=list)
    left: datetime | None = None
    left_how: str = ""  # advanced | complete | rolled back


@dataclass(frozen=True)
class Check:
    what: str
    seen: str
    ok: bool


def stages_of(pb: Playbook, events: Sequence[Event]) -> list[StageRun]:
    assert pb.rollout is not None
    runs = [StageRun(s.percent) for s in pb.rollout.stages]
    for ev in events:
        stage = ev.details.get("stage")
        if not ev.kind.startswith("rollout.") or not isinstance(stage, int) or not 0 <= stage < len(runs):
            continue
        run = runs[stage]
        if ev.kind == "rollout.started":
            run.entered = ev.at
        elif ev.kind == "rollout.advanced":
            run.entered = ev.at
            if stage > 0:
                runs[stage - 1].left, runs[stage - 1].left_how = ev.at, "advanced"
        elif ev.kind in ("rollout.completed", "rollout.rolled_back"):
            run.left, run.left_how = ev.at, "complete" if ev.kind == "rollout.completed" else "rolled back"
        elif ev.kind == "rollout.verdict":
            run.verdicts.append(ev)
        elif ev.kind == "rollout.held":
            run.held.append(ev.at)
        elif ev.kind == "rollout.released":
            run.released.append(ev.at)
    return runs


def _first(events: Sequence[Event], kind: str) -> datetime | None:
    return next((ev.at for ev in events if ev.kind == kind), None)


def _d(delta: timedelta) -> str:
    return format_duration(timedelta(minutes=round(delta.total_seconds() / 60)))


def check(
    scenario: Scenario, runs: list[StageRun], events: Sequence[Event], start: datetime, deadline: datetime
) -> list[Check]:
    """The gate held where the fault was, naming its segment; nowhere else; the rollout completed in time."""
    n, seg = scenario.stage, scenario.segment or "the faulty signal"

    def at(t: datetime) -> str:
        return "T+" + hhmm(t - start)

    faulted = runs[n]
    fault_at = _first(events, "drill.fault")
    released = next((t for t in faulted.released if fault_at and t >= fault_at), None)
    due = [
        v
        for v in faulted.verdicts
        if fault_at is not None and v.at >= fault_at and (released is None or v.at <= released)
    ]
    what = f"HOLD at stage {n + 1} ({faulted.percent:g}%) naming {seg}"
    named = [
        v
        for v in due
        if v.details["verdict"] == "HOLD" and any(w.startswith(f"{scenario.segment}: ") for w in v.details["why"])
    ]
    rolled = [v for v in due if v.details["verdict"] == "ROLLBACK"]
    if fault_at is None:
        first = Check(what, f"the rollout never reached stage {n + 1}: the fault never showed", False)
    elif rolled and (not named or rolled[0].at < named[0].at):
        first = Check(what, f"ROLLBACK at {at(rolled[0].at)} instead: {rolled[0].details['why'][0]}", False)
    elif named:
        v = named[0]
        line = next(w for w in v.details["why"] if w.startswith(f"{scenario.segment}: "))
        first = Check(what, f"HOLD at {at(v.at)}, {_d(v.at - fault_at)} after the fault: {line}", True)
    else:
        holds = [v for v in due if v.details["verdict"] == "HOLD"]
        said = ", ".join(dict.fromkeys(v.details["verdict"] for v in due)) or "nothing"
        seen = (
            f"HOLD at {at(holds[0].at)} without naming {seg}: {'; '.join(holds[0].details['why'])}"
            if holds
            else f"no HOLD with the fault on; the gate said {said}"
        )
        first = Check(what, seen, False)
    wrong = [
        f"{v.details['verdict']} at stage {i + 1} ({r.percent:g}%), {at(v.at)}: {v.details['why'][0]}"
        for i, r in enumerate(runs)
        for v in r.verdicts
        if v.details["verdict"] in WRONG and v not in due
    ]
    second = Check("no HOLD or ROLLBACK at a healthy stage", "; ".join(wrong) or "none", not wrong)
    done = _first(events, "rollout.completed")
    what = f"rollout complete by the deadline ({at(deadline)})"
    if done is not None:
        third = Check(what, f"complete at {at(done)}", done <= deadline)
    else:
        last = max((i for i, r in enumerate(runs) if r.entered is not None), default=0)
        how = runs[last].left_how or ("held" if len(runs[last].held) > len(runs[last].released) else "running")
        third = Check(what, f"not complete: {how} at stage {last + 1} ({runs[last].percent:g}%)", False)
    return [first, second, third]


def _timing(run: StageRun, at: Callable[[datetime], str]) -> str:
    if run.entered is None:
        return "never entered"
    parts = [f"entered {at(run.entered)}"]
    release = run.released[-1] if run.released else None
    if run.held:
        hold = next((v.at for v in run.verdicts if v.details["verdict"] == "HOLD"), run.held[0])
        parts.append(f"HOLD after {_d(hold - run.entered)}")
        parts += [f"held {at(t)}" for t in run.held] + [f"released {at(t)}" for t in run.released]
    since = release or run.entered
    go = next((v.at for v in run.verdicts if v.details["verdict"] == "GO" and v.at >= since), None)
    after = " after the release" if release else ""
    if go is None:
        parts.append(f"no GO{after}")
    else:
        parts.append(f"first GO {_d(go - since)}{after}" if release else f"first GO after {_d(go - since)}")
    if run.left:
        parts.append(f"{run.left_how} {at(run.left)} ({_d(run.left - run.entered)} in the stage)")
    return ", ".join(parts)


def render(
    pb: Playbook,
    scenario: Scenario,
    events: Sequence[Event],
    start: datetime,
    deadline: datetime,
    speed: float,
    real_seconds: float,
) -> tuple[list[str], bool]:
    assert pb.rollout is not None

    def at(t: datetime) -> str:
        return "T+" + hhmm(t - start)

    runs = stages_of(pb, events)
    out = [
        "",
        f"Rollout drill report: {pb.name} ({pb.service}), {pb.rollout.candidate} against {pb.rollout.baseline}, "
        f"clock x{speed:g}, {real_seconds:.1f} s real time",
        "",
    ]
    for i, run in enumerate(runs):
        out.append(f"  stage {i + 1} ({run.percent:g}%): {_timing(run, at)}")
        for v in run.verdicts:
            why = v.details["why"]
            out.append(f"      {at(v.at)}  {v.details['verdict']:<16} {why[0]}")
            if v.details["verdict"] in WRONG:
                out += [f"      {'':<7}  {'':<16} and {w}" for w in why[1:]]
    drill = [f"    {at(ev.at)}  {ev.summary}" for ev in events if ev.kind.startswith("drill.")]
    out += ["", "  drill events:", *drill] if drill else []
    checks = check(scenario, runs, events, start, deadline)
    out += ["", "  checks:"]
    out += [f"    {'ok' if c.ok else 'FAILED':<8}{c.what}: {c.seen}" for c in checks]
    failed = [c for c in checks if not c.ok]
    out.append("")
    out.append(
        "All checks passed." if not failed else f"{len(failed)} check(s) failed: " + "; ".join(c.what for c in failed)
    )
    return out, not failed
