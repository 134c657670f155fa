"""Benchmark the engine: pure trigger evaluation, and one evaluation of the shipped playbook against a
store holding a week of readings (SQLite file and PostgreSQL). Prints figures; exits 1 over target.

    .venv/bin/python bench/engine.py [--days 7] [--postgres URL]

Targets: pure evaluation of the five shipped triggers under 1 ms; one evaluation (latest values, jump
history, trigger states, commit) under 50 ms with a week of readings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import sqlalchemy

from rollback_bot import flows
from rollback_bot.clock import FakeClock
from rollback_bot.directory import StaticDirectory
from rollback_bot.flows import Deps
from rollback_bot.playbook import load_playbook
from rollback_bot.rules import Reading, TriggerState, step_trigger
from rollback_bot.store import ReadingRow, Store

PLAYBOOK = load_playbook(Path(__file__).resolve().parents[1] / "playbooks" / "genai-release.yaml")
HEALTHY = {
    "fatal_error_rate": 0.0,
    "error_rate": 0.002,
    "p95_latency_ms": 320,
    "anomaly_score": 0.8,
    "accuracy": 0.92,
    "sla_hit_rate": 0.96,
    "override_rate": 0.04,
    "complaints_per_hour": 0,
    "affected_users": 0,
}


def bench_pure(rounds: int = 20000) -> float:
    pb = PLAYBOOK.playbook
    now = datetime(2026, 1, 1, tzinfo=UTC)
    latest = {k: Reading.of(k, now, v) for k, v in HEALTHY.items()}
    history = {"error_rate": [Reading.of("error_rate", now - timedelta(minutes=m), 0.002) for m in range(15)]}
    states = {name: TriggerState() for name in pb.triggers}
    start = time.perf_counter()
    for _ in range(rounds):
        for name, trig in pb.triggers.items():
            _, states[name] = step_trigger(name, trig, states[name], latest, history, now)
    return (time.perf_counter() - start) / rounds * 1000


def fill(store: Store, days: int, end: datetime) -> int:
    pb = PLAYBOOK.playbook
    rows = []
    for name, spec in pb.signals.items():
        step = spec.every.total_seconds()
        n = int(days * 86400 / step)
        value = HEALTHY.get(name, 1.0)
        rows += [
            {
                "playbook": pb.name,
                "signal": name,
                "at": end - timedelta(seconds=i * step),
                "value": value,
                "status": "ok",
                "detail": "",
            }
            for i in range(n, 0, -1)
        ]
    with store.engine.begin() as conn:
        for i in range(0, len(rows), 20000):
            conn.execute(sqlalchemy.insert(ReadingRow), rows[i : i + 20000])
    return len(rows)


def bench_store(url: str, days: int) -> tuple[int, float, float, float]:
    store = Store(url)
    clock = FakeClock(datetime(2026, 3, 1, tzinfo=UTC))
    n = fill(store, days, clock.now())
    deps = Deps(store, clock, requests.Session(), StaticDirectory())
    times = []
    tracemalloc.start()
    for _ in range(50):
        clock.advance(0.1)  # stay within the signals' staleness window
        t0 = time.perf_counter()
        decisions = flows.evaluate(deps, PLAYBOOK)
        times.append((time.perf_counter() - t0) * 1000)
        assert all(d.status == "ok" for d in decisions), [d.status for d in decisions]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    store.close()
    return n, statistics.median(times), max(times), peak / 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument(
        "--postgres", default=os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    missed = []
    pure = bench_pure()
    print(
        f"pure evaluation of {len(PLAYBOOK.playbook.triggers)} triggers: {pure * 1000:.1f} us per round (target < 1 ms)"
    )
    if pure >= 1:
        missed.append("pure evaluation")
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("sqlite", f"sqlite:///{tmp}/bench.db")]
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        try:
            admin = sqlalchemy.create_engine(args.postgres)
            with admin.begin() as conn:
                conn.execute(sqlalchemy.text(f'create schema "{schema}"'))
            targets.append(("postgresql", f"{args.postgres}?options=-csearch_path%3D{schema}"))
        except Exception as exc:
            print(f"postgresql: skipped ({type(exc).__name__}: {str(exc).splitlines()[0]})")
            admin = None
        try:
            for name, url in targets:
                rows, median, worst, peak = bench_store(url, args.days)
                print(
                    f"{name}: one evaluation with {rows:,} stored readings ({args.days} days): median {median:.1f} ms, "
                    f"max {worst:.1f} ms, peak Python memory {peak:.1f} MB (target median < 50 ms)"
                )
                if median >= 50:
                    missed.append(name)
        finally:
            if admin is not None:
                with admin.begin() as conn:
                    conn.execute(sqlalchemy.text(f'drop schema "{schema}" cascade'))
    print("all targets met" if not missed else f"missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
