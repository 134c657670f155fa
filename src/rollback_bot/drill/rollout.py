"""`rollback-bot drill` of a rollout playbook: the seed's scenario on a sandboxed pair of versions, in
compressed time. The rollout walks its stages; at the fault stage one segment of the candidate goes bad; the
gate must HOLD naming it; a person holding a hold role investigates, fixes, waits for the readings to
recover and releases; the rollout goes on to complete. The real scheduler runs the gate (`rollout:<pb>`);
scripted people start, advance, fix and release. It ends by a deadline with a report (exit 1 on a miss)."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import requests

from rollback_bot.checking import load_checked
from rollback_bot.clock import ScaledClock
from rollback_bot.directory import StaticDirectory
from rollback_bot.drill.console import ConsoleNotifier, hhmm
from rollback_bot.drill.people import INTRUDER, drill_directory
from rollback_bot.drill.rollout_report import render
from rollback_bot.drill.rollout_sandbox import RolloutModel, RolloutSandbox, Scenario, ScenarioRefused, plan
from rollback_bot.drill.run import DrillRefused, Out, record_event, redirect
from rollback_bot.flows import rollout as flow
from rollback_bot.flows.deps import Deps, Outcome
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.scheduler import build_scheduler
from rollback_bot.store import audit
from rollback_bot.store import rollouts as store_rollouts
from rollback_bot.store.database import Store
from rollback_bot.store.models import Rollout

ROLLOUT_SPEED = 600.0  # the shipped rollout (about 4h of clock time) in about 25 s
REACT = timedelta(minutes=2)  # a person acts on a GO this long after it
INVESTIGATE = timedelta(minutes=3)  # after a HOLD: looking into it ...
FIX = timedelta(minutes=12)  # ... and the fix deployed


@dataclass
class Cast:
    """Who does what: the scripted people, by user ID."""

    advancer: str | None  # None: the gate advances by itself
    investigator: str  # holds a hold role: investigates, fixes, releases
    rollback: str | None
    directory: StaticDirectory

    def name(self, user: str) -> str:
        return self.directory.names.get(user, user)


def cast(loaded: LoadedPlaybook) -> Cast:
    pb = loaded.playbook
    ro = pb.rollout
    assert ro is not None
    directory, holders = drill_directory(pb)

    def first(roles: list[str], avoid: str | None = None) -> str | None:
        people = [p for r in roles for p in holders.get(r, [])]
        return next((p for p in people if p != avoid), people[0] if people else None)

    advancer = None if ro.advance.auto else first(ro.advance.requires)
    investigator = first(ro.hold.requires, avoid=advancer)
    if (advancer is None and not ro.advance.auto) or investigator is None:
        raise DrillRefused(f"{pb.name}: nobody holds the rollout's advance or hold roles, so nobody can drill it")
    return Cast(advancer, investigator, first(ro.rollback.requires), directory)


@dataclass
class Desk:
    """What the scripted people have done so far."""

    acted_on_go: tuple[int, datetime | None] | None = None
    rolled_back: bool = False
    hold_seen: datetime | None = None
    investigated: bool = False
    fixed: bool | None = None  # None: not yet looked at; False: nothing was wrong in the sandbox
    recovered: bool = False
    release_tried: bool = False
    fault_recorded: bool = False


def run_rollout_drill(
    path: str | Path | LoadedPlaybook,
    *,
    speed: float = ROLLOUT_SPEED,
    database_url: str | None = None,
    min_real_interval: float = 0.2,
    out: Out = print,
) -> int:
    """Run the rollout drill; 0 when the gate held where it should have and the rollout completed, else 1."""
    original = path if isinstance(path, LoadedPlaybook) else load_checked(path, env=False)
    pb0 = original.playbook
    if pb0.rollout is None:
        raise DrillRefused(f"{pb0.name} has no rollout to drill")
    try:
        scenario = plan(pb0)
    except ScenarioRefused as exc:
        raise DrillRefused(str(exc)) from None
    people = cast(original)
    clock = ScaledClock(speed)
    model = RolloutModel(scenario, pb0.rollout, clock.now)
    sandbox = RolloutSandbox(model).start()
    tmp = tempfile.TemporaryDirectory(prefix="rollback-drill-")
    store: Store | None = None
    try:
        loaded = redirect(original, sandbox.url)
        try:
            sandbox.route(loaded.playbook)
        except ScenarioRefused as exc:
            raise DrillRefused(str(exc)) from None
        store = Store(database_url or f"sqlite:///{tmp.name}/drill.db")
        with store.session() as s:
            if store_rollouts.active(s, playbook=pb0.name) is not None:
                raise DrillRefused(
                    f"{database_url} has a rollout of {pb0.name} under way; "
                    "finish it or give the drill another database"
                )
            first_event = audit.last_event_id(s)
        return _drill(loaded, scenario, people, model, sandbox.url, clock, store, first_event, min_real_interval, out)
    finally:
        sandbox.stop()
        if store is not None:
            store.close()
        tmp.cleanup()


def _drill(
    loaded: LoadedPlaybook,
    scenario: Scenario,
    people: Cast,
    model: RolloutModel,
    url: str,
    clock: ScaledClock,
    store: Store,
    first_event: int,
    min_real_interval: float,
    out: Out,
) -> int:
    pb = loaded.playbook
    ro = pb.rollout
    assert ro is not None
    directory = people.directory
    start = clock.now()
    deadline = start + scenario.deadline
    notifier = ConsoleNotifier(out, start, directory)
    http = requests.Session()
    http.trust_env = False  # loopback only: never through a proxy
    deps = Deps(store, clock, http, directory, notifier, min_real_interval=min_real_interval, webhook_backoff=0.05)
    sched = build_scheduler(deps, [loaded])
    stages = " -> ".join(f"{s.percent:g}%" for s in ro.stages)
    least = sum((s.min_duration for s in ro.stages), timedelta())
    out(f"Rollout drill: {pb.name} on a sandboxed {pb.service} at {url}; clock x{clock.speed:g}")
    out(
        f"  {ro.candidate} against {ro.baseline}: {stages} (stages at least {hhmm(least)}); deadline "
        f"T+{hhmm(scenario.deadline)} (~{scenario.deadline.total_seconds() / clock.speed:.0f} s)"
    )
    out(f"  fault at stage {scenario.stage + 1} ({scenario.percent:g}%): {scenario.describe(ro.candidate)}")
    advancer = f"{people.name(people.advancer)} advances" if people.advancer else "the gate advances by itself"
    out(f"  people: {advancer}; {people.name(people.investigator)} investigates holds and releases them")
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # overrun slots at high speed are noise here
    real0 = time.monotonic()
    try:
        sched.start()
        _conduct(deps, loaded, scenario, people, model, deadline, out)
    finally:
        sched.shutdown(wait=True)
        deps.reader.close()
        http.close()
    real = time.monotonic() - real0
    with store.session() as s:
        events = audit.playbook_events(s, playbook=pb.name, after=first_event)
    lines, ok = render(pb, scenario, events, start, deadline, clock.speed, real)
    for line in lines:
        out(line)
    return 0 if ok else 1


def _conduct(
    deps: Deps,
    loaded: LoadedPlaybook,
    scenario: Scenario,
    people: Cast,
    model: RolloutModel,
    deadline: datetime,
    out: Out,
) -> None:
    pb = loaded.playbook
    starter = people.advancer or people.investigator
    _say(deps, out, people, starter, "starts the rollout", flow.start(deps, loaded, starter))
    with deps.store.session() as s:
        row = store_rollouts.latest(s, playbook=pb.name)
    if row is None or row.id is None or row.status not in store_rollouts.ACTIVE:
        out("  drill stopped: the rollout did not start")
        return
    rollout_id = row.id
    desk = Desk()
    real_end = time.monotonic() + (deadline - deps.now()).total_seconds() / deps.clock.speed + 10
    while True:
        now = deps.now()
        with deps.store.session() as s:
            ro = s.get(Rollout, rollout_id)
            assert ro is not None
            s.expunge(ro)
        if ro.status not in store_rollouts.ACTIVE:
            return
        if now >= deadline or time.monotonic() > real_end:
            out(f"  drill stopped at the deadline: the rollout is {ro.status} at stage {ro.stage + 1}")
            return
        _fault(deps, pb.name, scenario, model, desk)
        _act(deps, loaded, scenario, people, model, desk, ro, now, out)
        time.sleep(0.01)


def _fault(deps: Deps, playbook: str, scenario: Scenario, model: RolloutModel, desk: Desk) -> None:
    with model.lock:
        since = model.fault_since
    if since is not None and not desk.fault_recorded:
        desk.fault_recorded = True
        record_event(
            deps,
            playbook,
            None,
            "drill.fault",
            since,
            f"drill: fault injected at {model.percent:g}%: {scenario.describe('the candidate')}",
            {"signal": scenario.signal, "segment": scenario.segment, "step": scenario.step},
        )


def _act(
    deps: Deps,
    loaded: LoadedPlaybook,
    scenario: Scenario,
    people: Cast,
    model: RolloutModel,
    desk: Desk,
    ro: Rollout,
    now: datetime,
    out: Out,
) -> None:
    """What the scripted people do now, given the rollout as it stands."""
    pb = loaded.playbook
    assert ro.id is not None
    if ro.status == "running":
        desk.hold_seen, desk.investigated, desk.fixed, desk.recovered, desk.release_tried = (
            None,
            False,
            None,
            False,
            False,
        )
        due = ro.verdict_at is not None and now >= ro.verdict_at + REACT
        if ro.verdict == "GO" and people.advancer and due and desk.acted_on_go != (ro.stage, ro.verdict_at):
            desk.acted_on_go = (ro.stage, ro.verdict_at)
            _say(deps, out, people, people.advancer, "advances", flow.advance(deps, loaded, ro.id, people.advancer))
        if ro.verdict == "ROLLBACK" and people.rollback and due and not desk.rolled_back:
            desk.rolled_back = True
            _say(deps, out, people, people.rollback, "rolls back", flow.roll_back(deps, loaded, ro.id, people.rollback))
        return
    if ro.status != "held":
        return
    desk.hold_seen = desk.hold_seen or now
    who = people.investigator
    if not desk.investigated and now >= desk.hold_seen + INVESTIGATE:
        desk.investigated = True
        why = _hold_reasons(deps, pb.name)
        record_event(
            deps,
            pb.name,
            None,
            "drill.investigating",
            now,
            f"drill: {people.name(who)} investigates the hold at stage {ro.stage + 1}: {why[0] if why else '?'}",
            {"stage": ro.stage, "why": why},
        )
    if desk.investigated and desk.fixed is None and now >= desk.hold_seen + FIX:
        desk.fixed = model.fix()
        what = (
            f"drill: {people.name(who)} deploys a fix of {ro.candidate}: {scenario.signal}"
            + (f" for {scenario.segment}" if scenario.segment else "")
            + " back to normal"
            if desk.fixed
            else f"drill: {people.name(who)} finds nothing wrong in the sandbox to fix"
        )
        record_event(deps, pb.name, None, "drill.fixed", now, what, {"stage": ro.stage, "fixed": desk.fixed})
    if desk.fixed is None:
        return
    if desk.fixed and not desk.recovered:
        if not _recovered(deps, loaded, scenario, model, ro.id):
            return
        desk.recovered = True
        where = f"{scenario.signal} for {scenario.segment}" if scenario.segment else scenario.signal
        record_event(
            deps, pb.name, None, "drill.recovered", now, f"drill: {where} of {ro.candidate} reads healthy again"
        )
    if desk.release_tried:
        return
    desk.release_tried = True
    intruder = flow.hold(deps, loaded, ro.id, INTRUDER, held=False)
    _say(deps, out, people, INTRUDER, "releases the hold", intruder, expect_ok=False)
    _say(deps, out, people, who, "releases the hold", flow.hold(deps, loaded, ro.id, who, held=False))


def _hold_reasons(deps: Deps, playbook: str) -> list[str]:
    with deps.store.session() as s:
        verdicts = [e for e in audit.playbook_events(s, playbook=playbook) if e.kind == "rollout.verdict"]
    return list(verdicts[-1].details.get("why", [])) if verdicts else []


def _recovered(deps: Deps, loaded: LoadedPlaybook, scenario: Scenario, model: RolloutModel, rollout_id: int) -> bool:
    """The candidate's newest readings of the faulty signal since the fix: enough of them, all near healthy."""
    ro = loaded.playbook.rollout
    assert ro is not None and model.fixed_at is not None
    with deps.store.session() as s:
        points = store_rollouts.points_since(s, rollout_id=rollout_id, since=model.fixed_at)
    mine = [
        p.value
        for p in points
        if p.signal == scenario.signal and p.version == "candidate" and p.segment == scenario.segment
    ]
    healthy = scenario.healthy(scenario.signal, "candidate")
    # the newest few: a read that began before the fix may be stamped just after it (a slow poll, a busy machine)
    recent = mine[-ro.min_points :]
    return len(recent) >= ro.min_points and all(abs(v - healthy) < abs(scenario.step) / 2 for v in recent)


def _say(deps: Deps, out: Out, people: Cast, user: str, verb: str, outcome: Outcome, *, expect_ok: bool = True) -> None:
    stamp = deps.notifier.stamp(deps.now()) if isinstance(deps.notifier, ConsoleNotifier) else ""
    surprise = "" if outcome.ok == expect_ok else "  (UNEXPECTED)"
    reply = "ok" if outcome.ok else "refused"
    out(f"  {stamp}  PERSON     {people.name(user)} {verb} -> {reply}: {outcome.message}{surprise}")
