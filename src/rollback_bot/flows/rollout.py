"""Use cases of a phased rollout: start it, observe it (read both versions, ask the gate, record a changed
verdict, hold or open an incident when the gate says so, advance by itself when allowed), and the people's
commands: advance, hold, release, roll back. Every step is an event on the playbook's timeline; the traffic
webhook runs after the commit (idempotent per rollout and stage)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from rollback_bot.directory import check_roles
from rollback_bot.flows.actions import call_webhook
from rollback_bot.flows.deps import Deps, Outcome
from rollback_bot.flows.watch import new_incident
from rollback_bot.metrics.compared import read_rollout
from rollback_bot.notify import publish_all
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.playbook.models import Playbook, RolloutSpec
from rollback_bot.rollout.gate import Decision, decide, describe
from rollback_bot.store import audit
from rollback_bot.store import rollouts as store_rollouts
from rollback_bot.store.models import Event, Incident, Rollout


def traffic_key(playbook: str, rollout_id: int, percent: float) -> str:
    return f"rollback-bot/{playbook}/rollout/{rollout_id}/{percent:g}"


def _spec(pb: Playbook) -> RolloutSpec:
    assert pb.rollout is not None
    return pb.rollout


def _record(s: Session, ro: Rollout, kind: str, at: datetime, summary: str, **details: Any) -> Event:
    which = f"rollout #{ro.id}" if ro.id is not None else "a rollout"
    return audit.record(
        s,
        playbook=ro.playbook,
        kind=kind,
        at=at,
        summary=f"{which} of {ro.candidate}: {summary}",
        actor=details.pop("actor", None),
        role=details.pop("role", None),
        details={"rollout": ro.id, "stage": ro.stage, **details},
    )


def _publish(deps: Deps, incident: Incident | None, events: list[Event]) -> None:
    """Rollout events go to the playbook's channel; an incident's events to the incident (its alert)."""
    for ev in events:
        publish_all(deps.notifier, incident if ev.incident_id is not None else None, [ev])


def _refuse(deps: Deps, s: Session, ro: Rollout, user: str, verb: str, roles: list[str]) -> Outcome:
    needed = " or ".join(roles)
    ev = _record(s, ro, "rollout.denied", deps.now(), f"{user} may not {verb}: needs {needed}", actor=user)
    s.commit()
    publish_all(deps.notifier, None, [ev])
    return Outcome(False, f"Only {needed} may {verb} this rollout.")


def _gate(deps: Deps, pb: Playbook, user: str, roles: list[str]) -> tuple[str | None, str | None]:
    """(role held, None) or (None, why not): a role that cannot be checked is said as such."""
    check = check_roles(pb, user, deps.directory, among=roles)
    if check.held:
        return sorted(check.held)[0], None
    if check.unknown:
        return None, f"I cannot check your role right now ({check.reason}). Nothing was refused; try again."
    return None, ""


def start(deps: Deps, loaded: LoadedPlaybook, user: str) -> Outcome:
    """Begin at the first stage: the people who may advance may start."""
    pb = loaded.playbook
    spec = _spec(pb)
    role, why = _gate(deps, pb, user, spec.advance.requires or spec.hold.requires)
    if role is None and why:
        return Outcome(False, why)
    now = deps.now()
    busy = Outcome(False, f"a rollout of {pb.name} is already under way; see /rollback status")
    with deps.store.session() as s:
        if store_rollouts.active(s, playbook=pb.name) is not None:
            return busy
        ro = Rollout(
            playbook=pb.name,
            playbook_version=loaded.version,
            baseline=spec.baseline,
            candidate=spec.candidate,
            started_at=now,
            started_by=user,
            stage_started_at=now,
        )
        if role is None:  # recorded against the rollout it would have been, which is not stored
            return _refuse(deps, s, ro, user, "start", spec.advance.requires or spec.hold.requires)
        s.add(ro)
        try:
            s.flush()
        except IntegrityError:  # another start won the race (one rollout under way per playbook: a unique index)
            s.rollback()
            return busy
        first = spec.stages[0].percent
        ev = _record(
            s,
            ro,
            "rollout.started",
            now,
            f"started at {first:g}% by {user} as {role}",
            actor=user,
            role=role,
            percent=first,
        )
        s.commit()
        assert ro.id is not None
        rollout_id = ro.id
    publish_all(deps.notifier, None, [ev])
    deps.background(lambda: set_traffic(deps, loaded, rollout_id))
    return Outcome(True, f"Rollout #{rollout_id} of {spec.candidate} started at {first:g}%.")


def set_traffic(deps: Deps, loaded: LoadedPlaybook, rollout_id: int, percent: float | None = None) -> bool:
    """Send the traffic webhook for the rollout's stage (or `percent`, e.g. 0 on a rollback); idempotent."""
    pb = loaded.playbook
    spec = _spec(pb)
    with deps.store.session() as s:
        ro = s.get(Rollout, rollout_id)
        assert ro is not None
        share = spec.stages[ro.stage].percent if percent is None else percent
        ctx = {"service": pb.service, "playbook": pb.name, "rollout": rollout_id, "candidate": ro.candidate}
        ctx |= {"baseline": ro.baseline, "percent": f"{share:g}", "stage": ro.stage + 1}
    key = traffic_key(pb.name, rollout_id, share)
    result = call_webhook(deps, spec.webhook, ctx, key, f"the traffic webhook of rollout {rollout_id}")
    with deps.store.session() as s:
        ro = s.get(Rollout, rollout_id)
        assert ro is not None
        if result.ok:
            ro.traffic = share
            s.add(ro)
        status = f"HTTP {result.status}" if result.status else result.response
        outcome = "set" if result.ok else "NOT set"
        ev = _record(
            s,
            ro,
            "rollout.traffic",
            deps.now(),
            f"traffic {outcome} to {share:g}% ({status}, {result.attempts} attempt(s))",
            percent=share,
            ok=result.ok,
            http_status=result.status,
            response=result.response,
        )
        s.commit()
    publish_all(deps.notifier, None, [ev])
    return result.ok


def observe(deps: Deps, loaded: LoadedPlaybook) -> Decision | None:
    """One look at the rollout under way: read both versions, ask the gate, act on what it says."""
    pb = loaded.playbook
    if pb.rollout is None:
        return None
    with deps.store.session() as s:
        ro = store_rollouts.active(s, playbook=pb.name)
        if ro is None:
            return None
        rollout_id = ro.id
    assert rollout_id is not None
    readings = read_rollout(deps.reader, pb, deps.now)
    now = deps.now()
    events: list[Event] = []
    incident: Incident | None = None
    with deps.lock(pb.name), deps.store.session() as s:
        store_rollouts.add_readings(s, rollout_id=rollout_id, readings=readings)
        s.commit()  # what was read is kept, whatever happens to the decision below
        ro = s.get(Rollout, rollout_id)
        if ro is None or ro.status not in store_rollouts.ACTIVE:
            return None
        points = store_rollouts.points_since(s, rollout_id=rollout_id, since=ro.stage_started_at)
        decision = decide(pb.rollout, ro.stage, ro.stage_started_at, now, points)
        if decision.verdict == ro.verdict:
            store_rollouts.looked(s, rollout=ro, at=now)
        else:
            change: dict[str, Any] = {"verdict": decision.verdict, "verdict_at": now, "looked_at": now}
            if ro.status == "running" and decision.verdict == "HOLD":
                change |= {"status": "held", "held_by": "gate"}
            before = ro.status
            if not store_rollouts.claim(s, rollout=ro, **change):
                s.rollback()  # someone advanced, held or released it meanwhile: the next look decides again
                return decision
            events.append(_verdict_event(s, ro, decision, now))
            if before == "running" and ro.status == "held":
                roles = ", ".join(pb.rollout.hold.requires)
                events.append(
                    _record(s, ro, "rollout.held", now, f"held by the gate; {roles}: investigate, then release")
                )
            if before == "running" and decision.verdict == "ROLLBACK" and ro.incident_id is None:
                events += _open_incident(s, loaded, ro, decision.why, now)
                incident = s.get(Incident, ro.incident_id)
                s.add(ro)
        auto_advance = ro.status == "running" and decision.verdict == "GO" and pb.rollout.advance.auto
        stage = ro.stage
        s.commit()
    _publish(deps, incident, events)
    if auto_advance:
        advance(deps, loaded, rollout_id, user="gate", stage=stage)
    return decision


def _verdict_event(s: Session, ro: Rollout, d: Decision, now: datetime) -> Event:
    worse = [describe(c) for c in d.worse]
    return _record(
        s,
        ro,
        "rollout.verdict",
        now,
        f"{d.verdict} at stage {ro.stage + 1}: {d.why[0]}",
        verdict=d.verdict,
        why=d.why,
        worse=worse,
        sample=d.sample,
        comparisons=[
            {
                "kind": c.kind,
                "signal": c.signal,
                "segment": c.segment,
                "baseline": c.baseline,
                "candidate": c.candidate,
                "p_value": c.p_value,
                "interval": list(c.interval) if c.interval else None,
                "state": c.state,
            }
            for c in d.comparisons
        ],
    )


def _open_incident(s: Session, loaded: LoadedPlaybook, ro: Rollout, why: list[str], now: datetime) -> list[Event]:
    """A guardrail (or the KPI under the rollback gate): an incident on the ladder, unless one is open."""
    pb = loaded.playbook
    open_one = s.exec(select(Incident).where(Incident.playbook == pb.name, Incident.status == "open")).first()
    if open_one is not None:
        ro.incident_id = open_one.id
        return []
    evidence = {"rollout": ro.id, "why": why}
    incident = new_incident(
        s,
        loaded,
        severity="major",
        trigger="rollout-gate",
        summary=f"rollout-gate: {why[0]}",
        evidence=evidence,
        now=now,
    )
    assert incident.id is not None
    ro.incident_id = incident.id
    opened = audit.record(
        s,
        playbook=pb.name,
        incident_id=incident.id,
        kind="incident.opened",
        at=now,
        summary=f"incident #{incident.id} opened on {pb.service}: the rollout gate of {ro.candidate} says ROLLBACK",
        details={"trigger": "rollout-gate", "severity": "major", **evidence},
    )
    return [opened]


def _changed(rollout_id: int) -> Outcome:
    return Outcome(False, f"rollout #{rollout_id} changed at the same moment; look at its message again")


def _stale(ro: Rollout, spec: RolloutSpec, stage: int | None) -> Outcome | None:
    """A button pressed for a stage the rollout has left (a double click, an old message): nothing to do."""
    if stage is None or stage == ro.stage:
        return None
    now_at = f"stage {ro.stage + 1} ({spec.stages[ro.stage].percent:g}%)"
    return Outcome(False, f"rollout #{ro.id} is already at {now_at}; that button was for stage {stage + 1}")


def advance(deps: Deps, loaded: LoadedPlaybook, rollout_id: int, user: str, *, stage: int | None = None) -> Outcome:
    """To the next stage, when the gate says GO now; at the last stage, GO completes the rollout. `stage` is
    the stage the person saw: a click meant for a stage already left does nothing."""
    pb = loaded.playbook
    spec = _spec(pb)
    role = "auto"
    if user != "gate":
        held, why = _gate(deps, pb, user, spec.advance.requires)
        if held is None and why:
            return Outcome(False, why)
        role = held or ""
    now = deps.now()
    with deps.lock(pb.name), deps.store.session() as s:
        ro = s.get(Rollout, rollout_id)
        if ro is None or ro.playbook != pb.name:
            return Outcome(False, f"no rollout #{rollout_id} of {pb.name}")
        if not role:
            return _refuse(deps, s, ro, user, "advance", spec.advance.requires)
        if ro.status != "running":
            by = f" by {ro.held_by}" if ro.held_by else ""
            return Outcome(False, f"rollout #{rollout_id} is {ro.status}{by}; it does not advance")
        if (stale := _stale(ro, spec, stage)) is not None:
            return stale
        if ro.verdict != "GO":
            return Outcome(False, f"the gate says {ro.verdict or 'nothing yet'} at stage {ro.stage + 1}: no advance")
        last = ro.stage == len(spec.stages) - 1
        if last:
            if not store_rollouts.claim(s, rollout=ro, status="complete", finished_at=now):
                return _changed(rollout_id)
            summary = f"complete at {spec.stages[ro.stage].percent:g}% ({user} as {role})"
            ev = _record(s, ro, "rollout.completed", now, summary, actor=user, role=role)
        else:
            change = {"stage": ro.stage + 1, "stage_started_at": now, "verdict": "", "verdict_at": None}
            if not store_rollouts.claim(s, rollout=ro, **change):
                return _changed(rollout_id)
            share = spec.stages[ro.stage].percent
            summary = f"advanced to stage {ro.stage + 1} ({share:g}%) by {user} as {role}"
            ev = _record(s, ro, "rollout.advanced", now, summary, actor=user, role=role, percent=share)
        s.commit()
    publish_all(deps.notifier, None, [ev])
    if last:
        return Outcome(True, f"Rollout #{rollout_id} complete.")
    deps.background(lambda: set_traffic(deps, loaded, rollout_id))
    return Outcome(True, f"Advanced rollout #{rollout_id} to {spec.stages[ro.stage].percent:g}%.")


def hold(
    deps: Deps, loaded: LoadedPlaybook, rollout_id: int, user: str, *, held: bool = True, stage: int | None = None
) -> Outcome:
    """Stop (or let go on from) the current stage; the traffic share stays as it is. A release meant for a
    stage the rollout has left does nothing (holding, like rolling back, is never refused for that)."""
    pb = loaded.playbook
    spec = _spec(pb)
    role, why = _gate(deps, pb, user, spec.hold.requires)
    if role is None and why:
        return Outcome(False, why)
    verb = "hold" if held else "release"
    now = deps.now()
    with deps.lock(pb.name), deps.store.session() as s:
        ro = s.get(Rollout, rollout_id)
        if ro is None or ro.playbook != pb.name:
            return Outcome(False, f"no rollout #{rollout_id} of {pb.name}")
        if role is None:
            return _refuse(deps, s, ro, user, verb, spec.hold.requires)
        if ro.status != ("running" if held else "held"):
            by = f" by {ro.held_by}" if ro.status == "held" and ro.held_by else ""
            return Outcome(False, f"rollout #{rollout_id} is {ro.status}{by}; nothing to {verb}")
        if not held and (stale := _stale(ro, spec, stage)) is not None:
            return stale
        if held:
            if not store_rollouts.claim(s, rollout=ro, status="held", held_by=user):
                return _changed(rollout_id)
            ev = _record(s, ro, "rollout.held", now, f"held by {user} as {role}", actor=user, role=role)
        else:
            # the stage starts over: its minimum duration and sample count from the release
            change = {"status": "running", "held_by": None, "stage_started_at": now, "verdict": "", "verdict_at": None}
            if not store_rollouts.claim(s, rollout=ro, **change):
                return _changed(rollout_id)
            ev = _record(s, ro, "rollout.released", now, f"released by {user} as {role}", actor=user, role=role)
        s.commit()
    publish_all(deps.notifier, None, [ev])
    return Outcome(True, f"Rollout #{rollout_id} {'held' if held else 'released'}.")


def roll_back(deps: Deps, loaded: LoadedPlaybook, rollout_id: int, user: str) -> Outcome:
    """Take the candidate's traffic to 0% and open the incident on the ladder."""
    pb = loaded.playbook
    spec = _spec(pb)
    role, why = _gate(deps, pb, user, spec.rollback.requires)
    if role is None and why:
        return Outcome(False, why)
    now = deps.now()
    with deps.lock(pb.name), deps.store.session() as s:
        ro = s.get(Rollout, rollout_id)
        if ro is None or ro.playbook != pb.name:
            return Outcome(False, f"no rollout #{rollout_id} of {pb.name}")
        if role is None:
            return _refuse(deps, s, ro, user, "roll back", spec.rollback.requires)
        if ro.status not in store_rollouts.ACTIVE:
            return Outcome(False, f"rollout #{rollout_id} is {ro.status.replace('_', ' ')}")
        if not store_rollouts.claim(s, rollout=ro, status="rolled_back", finished_at=now):
            return _changed(rollout_id)
        summary = f"rolled back by {user} as {role}: traffic to 0%"
        events = [_record(s, ro, "rollout.rolled_back", now, summary, actor=user, role=role)]
        if ro.incident_id is None:
            events += _open_incident(s, loaded, ro, [f"rolled back by {user}"], now)
        incident = s.get(Incident, ro.incident_id)
        s.add(ro)
        s.commit()
    _publish(deps, incident, events)
    deps.background(lambda: set_traffic(deps, loaded, rollout_id, percent=0.0))
    return Outcome(True, f"Rollout #{rollout_id} rolled back; incident #{ro.incident_id} is on the ladder.")


VERBS = ("advance", "hold", "release", "rollback")


def act(
    deps: Deps, playbooks: Mapping[str, LoadedPlaybook], rollout_id: int, verb: str, user: str, stage: int | None = None
) -> Outcome:
    """A person's advance, hold, release or roll back of rollout #id (a button or a command)."""
    with deps.store.session() as s:
        ro = s.get(Rollout, rollout_id) if 0 < rollout_id < 2**31 else None
        name = ro.playbook if ro is not None else None
    loaded = playbooks.get(name) if name is not None else None
    if loaded is None or loaded.playbook.rollout is None:
        return Outcome(False, f"there is no rollout #{rollout_id} this bot runs")
    if stage is not None and not 0 <= stage < len(loaded.playbook.rollout.stages):  # no button of ours carries it
        return Outcome(False, f"that button carries no stage of rollout #{rollout_id}; use /rollback status")
    if verb == "advance":
        return advance(deps, loaded, rollout_id, user, stage=stage)
    if verb in ("hold", "release"):
        return hold(deps, loaded, rollout_id, user, held=verb == "hold", stage=stage)
    if verb == "rollback":
        return roll_back(deps, loaded, rollout_id, user)
    return Outcome(False, f"a rollout cannot {verb}; try one of {', '.join(VERBS)}")
