"""Reading signals from their sources into the store, and back out as the latest values."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam
from sqlmodel import Session, col, delete, select

from rollback_bot.flows.deps import Deps
from rollback_bot.metrics import Endpoint, JsonSource, MetricSource, PrometheusSource
from rollback_bot.playbook.conditions import longest_jump_window, signals_in
from rollback_bot.playbook.models import ConnectionSpec, Playbook, SignalSpec
from rollback_bot.rules.readings import Reading
from rollback_bot.store.models import Incident, ReadingRow


def endpoint_of(url: str, conn: ConnectionSpec) -> Endpoint:
    """The connection settings of a source as the reader uses them (`${VAR}`s expand at read time)."""
    auth = (conn.basic_auth.username, conn.basic_auth.password) if conn.basic_auth else None
    return Endpoint(url, tuple(conn.headers.items()), auth, conn.tls.verify, conn.tls.ca_file)


def build_source(name: str, spec: SignalSpec, pb: Playbook) -> MetricSource:
    """The source of an external signal: a Prometheus query on sources.prometheus, or a JSON field."""
    timeout = spec.timeout.total_seconds()
    if spec.prometheus is not None:
        prom = pb.sources.prometheus
        assert prom is not None
        return PrometheusSource(
            name, endpoint_of(prom.url, prom), spec.prometheus, timeout, max_age=spec.sample_max_age
        )
    assert spec.http is not None and spec.json_path is not None
    return JsonSource(name, endpoint_of(spec.http, spec), spec.json_path, timeout, numeric_strings=spec.numeric_strings)


def builtin_reading(name: str, spec: SignalSpec, incident: Incident | None, now: datetime) -> Reading:
    """Signals the bot knows itself: minutes to acknowledgement, minutes since the incident opened."""
    if incident is None:
        return Reading.nodata(name, now, "no open incident")
    if spec.builtin == "ack_minutes":
        end = incident.acknowledged_at or now
        return Reading.of(name, now, (end - incident.opened_at).total_seconds() / 60)
    return Reading.of(name, now, (now - incident.opened_at).total_seconds() / 60)


def prune(deps: Deps, keep: timedelta) -> int:
    """Delete readings older than `keep` (charts of older incidents lose their lines; the timeline stays)."""
    with deps.store.session() as s:
        deleted = s.exec(delete(ReadingRow).where(col(ReadingRow.at) < deps.now() - keep))
        s.commit()
        return int(deleted.rowcount or 0)


def with_builtins(
    pb: Playbook, readings: dict[str, Reading], incident: Incident | None, now: datetime
) -> dict[str, Reading]:
    """Builtin signals computed now from the incident, over whatever was stored for them."""
    out = dict(readings)
    for name, spec in pb.signals.items():
        if spec.builtin is not None:
            out[name] = builtin_reading(name, spec, incident, now)
    return out


def to_reading(row: ReadingRow) -> Reading:
    status = row.status if row.status in ("ok", "nodata", "error") else "error"
    return Reading(row.signal, row.at, row.value, status, row.detail)  # type: ignore[arg-type]


# built once: constructing a statement costs more than running it on the (playbook, signal, at) index
_NEWEST = (
    select(ReadingRow)
    .where(col(ReadingRow.playbook) == bindparam("playbook"), col(ReadingRow.signal) == bindparam("signal"))
    .order_by(col(ReadingRow.at).desc(), col(ReadingRow.id).desc())
    .limit(1)
)


def latest(session: Session, pb: Playbook, now: datetime, poll_floor: timedelta = timedelta(0)) -> dict[str, Reading]:
    """The newest reading of each signal; one older than two poll intervals counts as no data.

    `poll_floor` is the shortest interval the scheduler really polls at (a compressed clock has one)."""
    out = {}
    for name, spec in pb.signals.items():
        row = session.exec(_NEWEST, params={"playbook": pb.name, "signal": name}).first()
        if row is None:
            continue
        reading = to_reading(row)
        if now - row.at > 2 * max(spec.every, poll_floor) + spec.timeout:
            reading = Reading.nodata(name, row.at, f"stale: last read {row.at:%H:%M:%S}")
        out[name] = reading
    return out


def history(session: Session, pb: Playbook, now: datetime) -> dict[str, list[Reading]]:
    """Readings inside the longest jump window of each signal a jump trigger reads."""
    windows: dict[str, timedelta] = {}
    for trig in pb.triggers.values():
        cond = trig.condition
        if cond is None:
            continue
        span = longest_jump_window(cond)
        if span:
            for sig in signals_in(cond):
                windows[sig] = max(windows.get(sig, timedelta(0)), span)
    out = {}
    for sig, span in windows.items():
        rows = session.exec(
            select(ReadingRow)
            .where(ReadingRow.playbook == pb.name, ReadingRow.signal == sig, col(ReadingRow.at) >= now - span)
            .order_by(col(ReadingRow.at))
        )
        out[sig] = [to_reading(r) for r in rows]
    return out
