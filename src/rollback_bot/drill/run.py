"""`rollback-bot drill`: the whole engine against a sandboxed model, on a compressed clock."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml
from sqlmodel import Session, col, select

from rollback_bot import flows
from rollback_bot.checking import load_checked
from rollback_bot.clock import ScaledClock
from rollback_bot.drill.console import ConsoleNotifier, hhmm
from rollback_bot.drill.pace import DrillRefused as DrillRefused  # raised here too; callers import it from run
from rollback_bot.drill.pace import plan, speed_problem
from rollback_bot.drill.people import Cue, drill_directory, script
from rollback_bot.drill.report import Timings, render
from rollback_bot.drill.sandbox import ModelState, Sandbox
from rollback_bot.drill.synthetic import CannotSimulate
from rollback_bot.flows.deps import Deps
from rollback_bot.flows.readings import latest
from rollback_bot.ladder.approvals import Approved, is_complete
from rollback_bot.ladder.steps import position
from rollback_bot.playbook.loader import LoadedPlaybook, parse_playbook
from rollback_bot.playbook.models import VERSION, Playbook
from rollback_bot.playbook.yamlsource import load_with_lines
from rollback_bot.scheduler import build_scheduler
from rollback_bot.store import audit
from rollback_bot.store.actions import approvals_of, runs_of
from rollback_bot.store.database import Store
from rollback_bot.store.incidents import open_incident
from rollback_bot.store.models import Event, Incident, TriggerStateRow

Out = Callable[[str], None]

KEY_METRICS = ("fatal_error_rate", "error_rate", "p95_latency_ms", "traffic_reverted_pct", "anomaly_score")


def redirect(loaded: LoadedPlaybook, base: str) -> LoadedPlaybook:
    """The same playbook with every source and webhook host replaced by the sandbox (paths kept)."""
    data, _ = load_with_lines(loaded.text)

    def move(url: str) -> str:
        parts = urlsplit(url)
        # a host per version (http://{version}.monitor/...) stays in the path, so the sandbox tells them apart
        path = f"/{parts.netloc}{parts.path}" if VERSION in parts.netloc else parts.path
        return base + path + (f"?{parts.query}" if parts.query else "")

    # the sandbox needs no credentials: a drill needs no secrets
    if data.get("sources", {}).get("prometheus"):
        data["sources"]["prometheus"] = base
    for spec in data["signals"].values():
        if "http" in spec:
            spec["http"] = move(spec["http"])
            for key in ("headers", "basic_auth", "tls"):
                spec.pop(key, None)
    hooks = [action["webhook"] for step in data["ladder"] for action in step.get("actions", [])]
    if data.get("rollout", {}).get("webhook"):
        hooks.append(data["rollout"]["webhook"])
    for hook in hooks:
        hook["url"] = move(hook["url"])
        hook.pop("headers", None)
    text = f"# drill copy of {loaded.source} (version {loaded.version})\n" + yaml.safe_dump(data, sort_keys=False)
    return parse_playbook(text, loaded.source)


def run_drill(
    path: str | Path,
    *,
    speed: float | None = None,
    fault_after: timedelta = timedelta(minutes=20),
    fault_trigger: str | None = None,
    database_url: str | None = None,
    min_real_interval: float = 0.2,
    long: bool = False,
    out: Out = print,
) -> int:
    """Run the drill; 0 when every target was met, 1 when one was missed. A playbook with a rollout plays
    the rollout (see drill/rollout.py); any other, its incident ladder, at `speed` or the pace.plan default.
    DrillRefused for a speed out of range, or a ladder drill over pace.LONGEST of real time without `long`."""
    if speed is not None and (problem := speed_problem(speed)):
        raise DrillRefused(problem)
    original = load_checked(path, env=False)  # webhooks go to the sandbox, without their headers
    if original.playbook.rollout is not None:
        from rollback_bot.drill.rollout import ROLLOUT_SPEED, run_rollout_drill

        return run_rollout_drill(
            original,
            speed=speed or ROLLOUT_SPEED,
            database_url=database_url,
            min_real_interval=min_real_interval,
            out=out,
        )
    pace = plan(original.playbook, fault_after, speed, min_real_interval, long=long)
    speed = pace.speed
    clock = ScaledClock(speed)
    state = ModelState(clock.now)
    try:
        sandbox = Sandbox(original.playbook, state, target=fault_trigger).start()
    except CannotSimulate as exc:
        raise DrillRefused(f"{original.source}: {exc}") from None
    tmp = tempfile.TemporaryDirectory(prefix="rollback-drill-")
    store = Store(database_url or f"sqlite:///{tmp.name}/drill.db")
    with store.session() as s:
        if open_incident(s, playbook=original.playbook.name) is not None:
            sandbox.stop()
            store.close()
            raise DrillRefused(
                f"{database_url} has an open incident for playbook {original.playbook.name}; "
                "resolve it or give the drill another database"
            )
    loaded = redirect(original, sandbox.url)
    pb = loaded.playbook
    directory, holders = drill_directory(pb)
    notifier = ConsoleNotifier(out, clock.now(), directory)
    http = requests.Session()
    http.trust_env = False  # loopback only: never through a proxy
    deps = Deps(store, clock, http, directory, notifier, min_real_interval=min_real_interval, webhook_backoff=0.05)
    sched = build_scheduler(deps, [loaded])
    out(
        f"Drill: {pb.name} on a sandboxed {pb.service} at {sandbox.url}; clock x{speed:g} "
        f"(the {pb.duration.total_seconds() / 3600:g}h ladder takes ~{pb.duration.total_seconds() / speed:.0f}s)"
    )
    if pace.late_polls:
        out(f"  WARNING: {pace.late_polls}")
    elif pace.slowed:
        out(f"  pace: {pace.slowed}")
    out(f"  signals: {len(pb.signals)}, triggers: {', '.join(pb.triggers)}; fault injected at T+{hhmm(fault_after)}")
    if sandbox.synthetic is not None:
        staged = ", ".join(sorted(sandbox.staged)) or None
        out(
            f"  model: derived from the playbook's thresholds; the fault makes '{sandbox.synthetic.target}' fire; "
            + (
                f"the stages of {staged} move traffic back"
                if staged
                else "no action has stages: nothing moves traffic back, so the model recovers only if you resolve"
            )
        )
        for note in sandbox.synthetic.notes:
            out(f"  note: {note}")
    out(f"  people: {', '.join(f'{directory.display_name(u)}={u}' for r in holders.values() for u in r[:1])}")
    # at x1440 a poll now and then overruns its slot; APScheduler says so for each one, which is noise here
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    real0 = time.monotonic()
    try:
        sched.start()
        timings = _conduct(deps, loaded, state, script(pb, holders), fault_after, notifier, out)
    finally:
        sched.shutdown(wait=True)
        sandbox.stop()
        store.close()
        tmp.cleanup()
    timings.real_seconds = time.monotonic() - real0
    lines, ok = render(pb, timings, speed, [pace.late_polls] if pace.late_polls else [])
    for line in lines:
        out(line)
    return 0 if ok else 1


def _conduct(
    deps: Deps,
    loaded: LoadedPlaybook,
    state: ModelState,
    cues: list[Cue],
    fault_after: timedelta,
    console: ConsoleNotifier,
    out: Out,
) -> Timings:
    pb = loaded.playbook
    start = deps.now()
    rollback = next((a.id for s in pb.ladder for a in s.actions if a.stages), None)
    t = Timings(rollback_action=rollback)
    budget = (fault_after + pb.duration + timedelta(hours=2)).total_seconds() / deps.clock.speed + 60
    real_end = time.monotonic() + budget
    next_progress = timedelta(hours=1)
    names = dict(getattr(deps.directory, "names", {}))
    with deps.store.session() as s:  # a kept database may hold earlier drills; follow only this one's
        first_id = max([i.id or 0 for i in s.exec(select(Incident).where(Incident.playbook == pb.name))], default=0)
    while time.monotonic() < real_end:
        now = deps.now()
        if t.fault_at is None and now - start >= fault_after:
            with state.lock:
                state.fault_at = now
            t.fault_at = now
            record_event(deps, pb.name, None, "drill.fault", now, "drill: fault injected into the sandboxed model")
        with deps.store.session() as s:
            incident = s.exec(
                select(Incident)
                .where(Incident.playbook == pb.name, col(Incident.id) > first_id)
                .order_by(col(Incident.id).desc())
            ).first()
            if incident is not None and incident.id is not None:
                t.opened_at, t.acked_at = incident.opened_at, incident.acknowledged_at
                if rollback:
                    approvals = approvals_of(s, incident_id=incident.id, action_id=rollback)
                    _, action = pb.action(rollback)
                    if is_complete(action.requires, [Approved(a.user_id, a.role) for a in approvals]):
                        t.approved_at = max(a.at for a in approvals)
                    last = [
                        r
                        for r in runs_of(s, incident_id=incident.id, action_id=rollback)
                        if r.stage == action.stage_list[-1] and r.status == "succeeded"
                    ]
                    t.executed_at = last[0].finished_at if last else None
                if t.executed_at and t.recovered_at is None and _all_clear(s, pb.name):
                    t.recovered_at = now
                    record_event(
                        deps,
                        pb.name,
                        incident.id,
                        "drill.recovered",
                        now,
                        "drill: every trigger is healthy again (metrics recovered)",
                    )
                if incident.opened_at and now - incident.opened_at >= next_progress:
                    _progress(deps, console, s, loaded, incident, now, out)
                    next_progress += timedelta(hours=1)
        if incident is not None and incident.id is not None:
            for cue in cues:
                if not cue.done and _due(cue, pb, incident, now):
                    cue.done = True
                    _perform(deps, incident.id, cue, names, console, out)
            if incident.status == "resolved":
                t.resolved_at = incident.resolved_at
                break
        time.sleep(0.01)
    else:
        out("  drill stopped: the time budget ran out before the incident was resolved")
    if t.opened_at is not None:
        with deps.store.session() as s:
            inc = s.exec(select(Incident).where(Incident.playbook == pb.name, col(Incident.id) > first_id)).first()
            assert inc is not None and inc.id is not None
            for ev in audit.timeline(s, inc.id):
                if ev.kind == "step.entered":
                    t.steps.setdefault(int(ev.details["step"]), ev.at)
    return t


def _due(cue: Cue, pb: Playbook, incident: Incident, now: datetime) -> bool:
    if cue.step == -1:
        ref = incident.opened_at
    elif cue.step >= len(pb.ladder):
        if incident.step_index < len(pb.ladder):
            return False
        ref = incident.opened_at + pb.duration
    else:
        if incident.step_index < cue.step:
            return False
        ref = incident.opened_at + pb.ladder[cue.step].start
    return now >= ref + cue.delay


def _perform(deps: Deps, incident_id: int, cue: Cue, names: dict[str, str], console: ConsoleNotifier, out: Out) -> None:
    if cue.verb == "ack":
        outcome = flows.acknowledge(deps, incident_id, cue.user)
    elif cue.verb == "approve":
        assert cue.action
        outcome = flows.approve(deps, incident_id, cue.action, cue.user)
    else:
        outcome = flows.resolve(deps, incident_id, cue.user)
    surprise = "" if outcome.ok == cue.expect_ok else "  (UNEXPECTED)"
    reply = "ok" if outcome.ok else "refused"
    out(f"  {console.stamp(deps.now())}  PERSON     {cue.describe(names)} -> {reply}: {outcome.message}{surprise}")


def _all_clear(s: Session, playbook: str) -> bool:
    rows = list(s.exec(select(TriggerStateRow).where(TriggerStateRow.playbook == playbook)))
    return bool(rows) and all(not r.firing and r.pending_since is None for r in rows)


def _progress(
    deps: Deps,
    console: ConsoleNotifier,
    s: Session,
    loaded: LoadedPlaybook,
    incident: Incident,
    now: datetime,
    out: Out,
) -> None:
    pb = loaded.playbook
    pos = position(pb, now - incident.opened_at)
    values = latest(s, pb, now, deps.poll_floor)
    keys = [k for k in KEY_METRICS if k in pb.signals] or list(
        dict.fromkeys(sig for trig in pb.triggers.values() for sig in trig.signals)
    )[:5]
    shown = ", ".join(f"{k}={values[k].value:.3g}" for k in keys if k in values and values[k].value is not None)
    where = f"step {pos.index + 1}/{len(pb.ladder)}" if pos.index is not None else "ladder complete"
    out(f"  {console.stamp(now)}  progress   L+{hhmm(now - incident.opened_at)} {where} | {shown}")


def record_event(
    deps: Deps,
    playbook: str,
    incident_id: int | None,
    kind: str,
    at: datetime,
    summary: str,
    details: dict[str, Any] | None = None,
) -> None:
    """A drill's own event (fault, recovery, ...) on the timeline, and on the console."""
    with deps.store.session() as s:
        ev: Event = audit.record(
            s, playbook=playbook, incident_id=incident_id, kind=kind, at=at, summary=summary, details=details
        )
        s.commit()
    deps.notifier.publish(None, ev)
