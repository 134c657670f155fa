"""Use cases of the daily panic run: run it when due (or say it was missed), and acknowledge a failure.

A run reads its checks' signals from their sources now, tests each threshold, and records `panic.passed` or
`panic.failed` on the playbook's timeline (posted in its channel). A failure is a pre-launch alert, not an
incident: no ladder; it waits for someone in `panic_run.acknowledge` to say they have seen it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from rollback_bot.directory import check_roles, holders
from rollback_bot.flows.deps import Deps, Outcome
from rollback_bot.metrics.build import build_source
from rollback_bot.notify import publish_all
from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.playbook.models import PanicRunSpec, Playbook
from rollback_bot.rules.panic import Due, Verdict, against_baseline, evaluate_checks, runs_due
from rollback_bot.store import audit
from rollback_bot.store import panic as store_panic
from rollback_bot.store.models import Event, PanicRun

ACK = "/rollback ack-panic"


def _when(due: Due, spec: PanicRunSpec) -> str:
    return f"{due.day.isoformat()} {spec.at:%H:%M} {spec.zone}"


def run_due(deps: Deps, loaded: LoadedPlaybook) -> list[Event]:
    """Run today's panic run if it is due, and record each run missed since the last one (bot down)."""
    pb = loaded.playbook
    spec = pb.panic_run
    if spec is None:
        return []
    now = deps.now()
    with deps.store.session() as s:
        since = store_panic.kept_since(s, playbook=pb.name, now=now)
        last = store_panic.last_day(s, playbook=pb.name)
        s.commit()
    last_day = date.fromisoformat(last) if last else None
    events = []
    for due in runs_due(at=spec.at, zone=spec.zone, since=since, last_day=last_day, now=now):
        verdict = _read_and_check(deps, pb, spec) if due.action == "run" else None
        ev = _record(deps, pb, spec, due, verdict)
        if ev is not None:
            events.append(ev)
    if spec.remind_every is not None:
        events += _remind(deps, pb, spec.remind_every)
    publish_all(deps.notifier, None, events)
    return events


def _people(deps: Deps, pb: Playbook, spec: PanicRunSpec) -> list[str]:
    return sorted({p for role in spec.acknowledge for p in holders(pb, role, deps.directory)})


def _remind(deps: Deps, pb: Playbook, every: timedelta) -> list[Event]:
    """A reminder in the channel for each failure unacknowledged for `every` since it (or its last reminder)."""
    now = deps.now()
    events = []
    assert pb.panic_run is not None
    people = _people(deps, pb, pb.panic_run)
    with deps.lock(pb.name), deps.store.session() as s:
        for run in store_panic.reminders_due(s, playbook=pb.name, last_before=now - every + timedelta(microseconds=1)):
            if not store_panic.mark_reminded(s, run=run, at=now):
                continue  # another process reminded first
            waited = format_duration(now - run.at)
            events.append(
                audit.record(
                    s,
                    playbook=pb.name,
                    kind="panic.reminder",
                    at=now,
                    summary=(
                        f"pre-launch alert #{run.id} (panic run of {run.day}) still unacknowledged after {waited}: "
                        f"{run.summary}. Acknowledge with `{ACK} {run.id}`"
                    ),
                    details={
                        "run": run.id,
                        "day": run.day,
                        "waited_seconds": (now - run.at).total_seconds(),
                        "mentions": people,
                    },
                )
            )
        s.commit()
    return events


def _read_and_check(deps: Deps, pb: Playbook, spec: PanicRunSpec) -> Verdict:
    sources = [build_source(name, pb.signals[name], pb) for name in spec.signals]
    readings = deps.reader.read_all(sources, deps.now)
    verdict = evaluate_checks(spec.checks, {r.signal: r for r in readings})
    if spec.drift is None:
        return verdict
    drift = spec.drift
    with deps.store.session() as s:
        baselines = store_panic.passed_values(s, playbook=pb.name, since=deps.now() - timedelta(days=drift.days))
    return against_baseline(verdict, baselines, max_change=drift.max_change, min_runs=drift.min_runs, days=drift.days)


def _record(deps: Deps, pb: Playbook, spec: PanicRunSpec, due: Due, verdict: Verdict | None) -> Event | None:
    """The day's run, once: the process that claims the day records its event."""
    now, when = deps.now(), _when(due, spec)
    details: dict[str, Any] = {"day": due.day.isoformat(), "due_at": due.due_at.isoformat(), "zone": spec.zone}
    verdict_line = "not run" if verdict is None else verdict.figures() if verdict.passed else verdict.drifted()
    if verdict is None:
        status = "missed"
        summary = (
            f"panic run of {when} missed: the bot did not run it (down or stuck then; "
            f"noticed {now:%Y-%m-%d %H:%M} UTC); nothing was checked that day"
        )
    elif verdict.passed:
        status, summary = "passed", f"panic run {when} passed: {verdict.figures()}"
    else:
        status, summary = "failed", f"panic run {when} FAILED: {verdict.drifted()}"
    if verdict is not None:
        details["checks"] = [
            {"check": r.check, "signal": r.signal, "value": r.value, "ok": r.ok, "problem": r.problem}
            for r in verdict.results
        ]
    if status == "failed":  # who must look: the people holding the roles that may acknowledge it
        details["mentions"] = _people(deps, pb, spec)
    with deps.lock(pb.name), deps.store.session() as s:
        run_id = store_panic.claim_day(
            s, playbook=pb.name, day=due.day.isoformat(), due_at=due.due_at, status=status, at=now, summary=verdict_line
        )
        if run_id is None:  # another process recorded this day first
            s.rollback()
            return None
        if status == "failed":
            summary += f". Pre-launch alert #{run_id}: acknowledge with `{ACK} {run_id}`"
        ev = audit.record(
            s, playbook=pb.name, kind=f"panic.{status}", at=now, summary=summary, details={"run": run_id, **details}
        )
        s.commit()
        return ev


def acknowledge(deps: Deps, playbooks: Mapping[str, LoadedPlaybook], user: str, run_id: int | None) -> Outcome:
    """Acknowledge a pre-launch alert (the one named, or the only one waiting), by someone in its playbook's
    panic_run.acknowledge roles; recorded with who and when."""
    now = deps.now()
    with deps.store.session() as s:
        if run_id is not None:
            run = s.get(PanicRun, run_id)
            if run is None or run.status != "failed" or run.playbook not in playbooks:
                return Outcome(False, f"there is no pre-launch alert #{run_id}")
        else:
            waiting = store_panic.unacknowledged(s, playbooks=list(playbooks))
            if not waiting:
                return Outcome(False, "no pre-launch alert is waiting for an acknowledgement")
            if len(waiting) > 1:
                names = ", ".join(f"#{r.id} ({r.playbook} {r.day})" for r in waiting)
                return Outcome(
                    False, f"several pre-launch alerts wait: {names}; say which, e.g. `{ACK} {waiting[0].id}`"
                )
            run = waiting[0]
        assert run.id is not None
        pb = playbooks[run.playbook].playbook
        required = pb.panic_run.acknowledge if pb.panic_run is not None else pb.acknowledge.requires
        name = deps.directory.display_name(user)
        who = f"{name} ({user})" if name != user else user
        check = check_roles(pb, user, deps.directory, among=required)
        base = {"run": run.id, "day": run.day, "name": name}
        if not check.held:
            if check.unknown:
                reason = next(iter(check.unknown.values()))
                return Outcome(False, f"I cannot check your role right now ({reason}). Nothing was refused; try again")
            needed = " or ".join(dict.fromkeys(required))
            ev = audit.record(
                s,
                playbook=pb.name,
                kind="panic.denied",
                at=now,
                actor=user,
                summary=f"{who} may not acknowledge pre-launch alert #{run.id}: needs {needed}",
                details={**base, "needs": list(required)},
            )
            s.commit()
            publish_all(deps.notifier, None, [ev])
            return Outcome(False, f"Only {needed} may acknowledge pre-launch alert #{run.id}.")
        if not store_panic.acknowledge(s, run_id=run.id, user=user, at=now):
            s.rollback()
            s.refresh(run)
            at = f" at {run.acknowledged_at:%H:%M:%S} UTC" if run.acknowledged_at else ""
            return Outcome(False, f"pre-launch alert #{run.id} was already acknowledged by {run.acknowledged_by}{at}")
        role = sorted(check.held)[0]
        ev = audit.record(
            s,
            playbook=pb.name,
            kind="panic.acknowledged",
            at=now,
            actor=user,
            role=role,
            summary=f"pre-launch alert #{run.id} (panic run of {run.day}) acknowledged by {who} as {role}",
            details=base,
        )
        s.commit()
    publish_all(deps.notifier, None, [ev])
    return Outcome(True, f"pre-launch alert #{run.id} (panic run of {run.day}) acknowledged")
