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
from rollback_bot.backtest.inputs import BadInput, KnownIncident, parse_time, read_incidents, read_readings
from rollback_bot.backtest.replay import replay
from rollback_bot.backtest.score import score
from rollback_bot.metrics.build import endpoint_of
from rollback_bot.metrics.endpoint import Endpoint
from rollback_bot.metrics.history import HistoryError, query_range
from rollback_bot.playbook.loader import load_playbook
from rollback_bot.playbook.models import Playbook
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


def window(start: str, end: str) -> tuple[datetime, datetime]:
    try:
        t0, t1 = parse_time(start), parse_time(end)
    except (ValueError, OverflowError, OSError) as exc:
        raise BadInput(f"--from/--to: {exc}") from None
    if t0 >= t1:
        raise BadInput(f"--from {t0.isoformat()} is not before --to {t1.isoformat()}")
    return t0, t1


def history(
    pb: Playbook, opts: Options, start: datetime, end: datetime, session: requests.Session
) -> tuple[dict[str, list[Reading]], list[str]]:
    """Readings by signal, and notes on what could not be had."""
    series = read_readings(Path(opts.readings), pb) if opts.readings else {}
    notes: list[str] = []
    wanted = [n for n, s in pb.signals.items() if n not in series and s.builtin is None and not s.compared]
    prom = [n for n in wanted if pb.signals[n].prometheus is not None and not pb.signals[n].segments]
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
    skipped = [n for n, s in pb.signals.items() if s.compared or s.segments]
    if skipped:
        notes.append(f"not replayed (per version or per segment): {', '.join(skipped)}")
    return series, notes


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
        series, notes = history(pb, opts, start, end, http)
    except (BadInput, HistoryError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    finally:
        if own:
            http.close()
    began = time.perf_counter()
    result = replay(pb, series, start, end)
    took = time.perf_counter() - began
    if opts.format == "table":
        notes.append(f"replayed in {took:.2f}s")
    scores = score(result, known, list(pb.triggers)) if opts.incidents else None
    report.write(opts.format, result, scores, notes, out)
    if opts.charts:
        written = charts.draw(pb, result, series, known, Path(opts.charts))
        print(f"wrote {len(written)} chart(s) to {opts.charts}", file=sys.stderr)
    return 0
