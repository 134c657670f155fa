"""Use case: Alertmanager's alerts as signals. The webhook stores them (`receive`, in the web request, before
its 200); a poll of the leader reads each alertmanager signal from what is stored (`read`), like any signal,
and records in the timeline when its alerts start or stop firing, with their labels, annotations and links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session

from rollback_bot.metrics.alertmanager import Alert, Payload, alerts_of, matching, reading
from rollback_bot.playbook.models import AlertmanagerSpec, Playbook
from rollback_bot.rules.readings import Reading
from rollback_bot.store import alerts as store_alerts
from rollback_bot.store import audit
from rollback_bot.store import readings as store_readings
from rollback_bot.store.models import Event, Incident

MAX_EVIDENCE = 10  # alerts kept in one timeline event


def specs(pb: Playbook, names: Sequence[str] | None = None) -> dict[str, AlertmanagerSpec]:
    """The playbook's alertmanager signals (among `names`)."""
    wanted = pb.signals if names is None else names
    return {n: spec.alertmanager for n in wanted if (spec := pb.signals[n]).alertmanager is not None}


def receive(s: Session, payload: Payload, now: datetime) -> list[Alert]:
    """Store a delivery's alerts (the caller commits); its alerts, as stored."""
    alerts = alerts_of(payload, now)
    store_alerts.store(s, alerts)
    return alerts


def matched(s: Session, signals: Mapping[str, AlertmanagerSpec]) -> dict[str, list[Alert]]:
    """Each signal's stored alerts (one query; by alertname when every signal names one)."""
    names: set[str] | None = set()
    for spec in signals.values():
        if "alertname" not in spec.match:
            names = None
            break
        assert names is not None
        names.add(spec.match["alertname"])
    return matching(signals, store_alerts.named(s, alertnames=names))


def read(
    s: Session, pb: Playbook, names: Sequence[str], incident: Incident | None, now: datetime
) -> tuple[list[Reading], list[Event]]:
    """The readings of the named alertmanager signals now, and an event for each whose alerts started or stopped
    firing since its last stored reading."""
    signals = specs(pb, names)
    found = matched(s, signals)
    readings = [reading(n, spec, found.get(n, []), now) for n, spec in signals.items()]
    before = store_readings.newest(s, playbook=pb.name, signals=list(signals))
    events = []
    for r in readings:
        old = before.get(r.signal)
        was = old.value if old is not None and old.status == "ok" else None
        now_value = r.value if r.usable else None
        if now_value is None or now_value == was or (not now_value and was is None):
            continue  # no change, no data now, or healthy from the start
        firing = [a for a in found.get(r.signal, []) if a.firing_at(now)]
        kind = "alert.firing" if now_value else "alert.resolved"
        shown = firing or sorted(found.get(r.signal, []), key=lambda a: a.received_at)[-1:]
        events.append(
            audit.record(
                s,
                playbook=pb.name,
                incident_id=incident.id if incident else None,
                kind=kind,
                at=now,
                summary=f"{r.signal} = {now_value:g}, {r.detail}",
                details={"signal": r.signal, "value": now_value, "alerts": evidence(shown)},
            )
        )
    return readings, events


def evidence(alerts: Sequence[Alert]) -> list[dict[str, Any]]:
    return [a.evidence() for a in sorted(alerts, key=lambda a: a.starts_at)[:MAX_EVIDENCE]]


def firing_evidence(s: Session, pb: Playbook, signals: Sequence[str], now: datetime) -> dict[str, list[dict[str, Any]]]:
    """For a trigger that fired: the alerts firing now of each of its alertmanager signals."""
    wanted = specs(pb, [n for n in signals if n in pb.signals])
    if not wanted:
        return {}
    found = matched(s, wanted)
    out = {}
    for name in wanted:
        firing = [a for a in found.get(name, []) if a.firing_at(now)]
        if firing:
            out[name] = evidence(firing)
    return out
