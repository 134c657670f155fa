"""`rollback-bot backtest`: gather the history (a readings file, Prometheus range queries), replay it, report."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import requests

from rollback_bot.backtest import charts, report
from rollback_bot.backtest.inputs import BadInput, KnownIncident, parse_time, read_history, read_incidents
from rollback_bot.backtest.replay import replay
from rollback_bot.backtest.rollout import Gate, gate_windows
from rollback_bot.backtest.score import score
from rollback_bot.metrics.build import endpoint_of
from rollback_bot.metrics.endpoint import Endpoint
from rollback_bot.metrics.history import HistoryError, query_range, query_range_segments
from rollback_bot.playbook.durations import parse_duration
from rollback_bot.playbook.loader import load_playbook
from rollback_bot.playbook.models import VERSION, Playbook
from rollback_bot.rollout.gate import Point, Version
from rollback_bot.rules.readings import Reading
from rollback_bot.rules.step import jump_windows


@dataclass(frozen=True)
class Options:
    playbook: str
    start: str
    end: str
    readings: str | None = None
    incidents: str | None = None
    format: str = "table"
    charts: str | None = None
    prometheus: str | None = None  # base URL instead of the playbook's sources.prometheus
    use_prometheus: bool = True
    timeout: float = 30.0  # seconds per range query
    window: str = "7d"  # the rollout gate's verdict is given per window of this length
    stage: int = 1  # ... judged as this stage of the rollout (its minimum sample and duration)


def window(start: str, end: str) -> tuple[datetime, datetime]:
    try:
        t0, t1 = parse_time(start), parse_time(end)
    except (ValueError, OverflowError, OSError) as exc:
        raise BadInput(f"--from/--to: {exc}") from None
    if t0 >= t1:
        raise BadInput(f"--from {t0.isoformat()} is not before --to {t1.isoformat()}")
    return t0, t1


@dataclass
class History:
    series: dict[str, list[Reading]]  # by signal, for the triggers
    points: list[Point]  # the rollout's signals per version and segment, for its gate
    notes: list[str]


def history(pb: Playbook, opts: Options, start: datetime, end: datetime, session: requests.Session) -> History:
    """Readings by signal, the rollout's points, and notes on what could not be had."""
    series, points = read_history(Path(opts.readings), pb) if opts.readings else ({}, [])
    notes: list[str] = []
    wanted = [n for n, s in pb.signals.items() if n not in series and s.builtin is None and not s.compared]
    wanted = [n for n in wanted if not pb.signals[n].segments]
    prom = [n for n in wanted if pb.signals[n].prometheus is not None]
    if prom and opts.use_prometheus:
        base = _prometheus(pb, opts)
        lead = max(jump_windows(pb).values(), default=timedelta(0))  # a jump looks back from the first tick
        for name in prom:
            spec = pb.signals[name]
            assert spec.prometheus is not None
            first = start - spec.every * math.ceil(lead / spec.every)
            series[name] = query_range(session, base, name, spec.prometheus, first, end, spec.every, opts.timeout)
    missing = [n for n in wanted if n not in series]
    if missing:
        notes.append(f"no history for {len(missing)} signal(s), replayed as no data: {', '.join(missing)}")
    if pb.rollout is not None:
        points += _rollout_points(pb, opts, start, end, session, series, {p.signal for p in points}, notes)
        points.sort(key=lambda p: p.at)
    else:
        skipped = [n for n, s in pb.signals.items() if s.compared or s.segments]
        if skipped:
            notes.append(f"not replayed (per version or per segment, and no rollout): {', '.join(skipped)}")
    return History(series, points, notes)


def _rollout_points(
    pb: Playbook,
    opts: Options,
    start: datetime,
    end: datetime,
    session: requests.Session,
    series: dict[str, list[Reading]],
    given: set[str],
    notes: list[str],
) -> list[Point]:
    """The rollout's signals not given in the file: per version (and segment) from Prometheus range queries,
    a signal read once from the triggers' history (it counts as the candidate's, as live)."""
    ro = pb.rollout
    assert ro is not None
    out: list[Point] = []
    missing = []
    for name in ro.signals:
        spec = pb.signals[name]
        if name in given or spec.builtin is not None:
            continue
        if not spec.compared and not spec.segments and name in series:
            out += [Point(name, "candidate", "", r.at, r.value) for r in series[name] if r.value is not None]
            continue
        if spec.prometheus is None or not opts.use_prometheus:
            missing.append(name)
            continue
        base = _prometheus(pb, opts)
        versions: list[tuple[Version, str]] = (
            [("baseline", ro.baseline), ("candidate", ro.candidate)] if spec.compared else [("candidate", "")]
        )
        for role, version in versions:
            query = spec.prometheus.replace(VERSION, version)
            by_segment = (
                query_range_segments(session, base, name, query, spec.segments, start, end, spec.every, opts.timeout)
                if spec.segments
                else {"": query_range(session, base, name, query, start, end, spec.every, opts.timeout)}
            )
            for segment, readings in by_segment.items():
                out += [Point(name, role, segment, r.at, r.value) for r in readings if r.value is not None]
    if missing:
        notes.append(
            f"no history for {len(missing)} rollout signal(s), the gate sees no data: {', '.join(missing)} "
            "(give them in --readings with a version column, and a segment column when read per segment)"
        )
    return out


def _window(opts: Options, pb: Playbook) -> timedelta | None:
    """The rollout gate's window (None without a rollout); BadInput for a bad --window or --stage."""
    if pb.rollout is None:
        return None
    try:
        span = parse_duration(opts.window)
    except ValueError as exc:
        raise BadInput(f"--window: {exc}") from None
    if span <= timedelta(0):
        raise BadInput("--window must be longer than zero, e.g. 7d")
    if not 1 <= opts.stage <= len(pb.rollout.stages):
        raise BadInput(f"--stage {opts.stage}: the rollout has stages 1 to {len(pb.rollout.stages)}")
    return span


def _prometheus(pb: Playbook, opts: Options) -> Endpoint:
    if opts.prometheus:
        return Endpoint(opts.prometheus)
    if pb.sources.prometheus is None:
        raise BadInput("the playbook has prometheus signals but no sources.prometheus; give --prometheus URL")
    return endpoint_of(pb.sources.prometheus.url, pb.sources.prometheus)


def run(opts: Options, out: IO[str], session: requests.Session | None = None) -> int:
    """Exit status: 0 done; 2 bad input or no history (one line on stderr). PlaybookInvalid propagates."""
    loaded = load_playbook(opts.playbook)
    pb = loaded.playbook
    own = session is None
    http = session or requests.Session()
    try:
        start, end = window(opts.start, opts.end)
        known: list[KnownIncident] = read_incidents(Path(opts.incidents)) if opts.incidents else []
        past = history(pb, opts, start, end, http)
        span = _window(opts, pb)
    except (BadInput, HistoryError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    finally:
        if own:
            http.close()
    began = time.perf_counter()
    result = replay(pb, past.series, start, end)
    took = time.perf_counter() - began
    notes = past.notes
    if opts.format == "table":
        notes.append(f"replayed in {took:.2f}s")
    if pb.rollout is not None and span is not None:
        result.gate = Gate(opts.stage, span, gate_windows(pb.rollout, past.points, start, end, span, opts.stage - 1))
    scores = score(result, known, list(pb.triggers)) if opts.incidents else None
    report.write(opts.format, result, scores, notes, out)
    if opts.charts:
        written = charts.draw(pb, result, past.series, known, Path(opts.charts))
        print(f"wrote {len(written)} chart(s) to {opts.charts}", file=sys.stderr)
    return 0
