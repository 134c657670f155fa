"""Benchmark the backtest: replay 30 days of 1-minute readings of the shipped playbook's signals (about a
million readings) through the live evaluation, on a simulated clock. Prints figures; exits 1 over target.

    .venv/bin/python bench/backtest.py [--days 30] [--runs 3]

The machine is shared, so the time is also given as a ratio against a reference measured in the same run: a
bare loop over the same readings (a sum of their values). Median of `--runs`. Target: under 10 s.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rollback_bot.backtest.replay import replay
from rollback_bot.playbook import load_playbook
from rollback_bot.playbook.models import Playbook
from rollback_bot.rules.readings import Reading

PLAYBOOK = Path(__file__).resolve().parent.parent / "playbooks" / "genai-release.yaml"
START = datetime(2026, 1, 1, tzinfo=UTC)
TARGET_S = 10.0
HEALTHY = {
    "fatal_error_rate": 0.0,
    "error_rate": 0.002,
    "p95_latency_ms": 320.0,
    "throughput_rps": 140.0,
    "error_logs_per_min": 1.0,
    "cpu_util_pct": 45.0,
    "gpu_util_pct": 60.0,
    "availability_pct": 99.95,
    "anomaly_score": 1.0,
    "accuracy": 0.92,
    "sla_hit_rate": 0.95,
    "override_rate": 0.05,
    "predictions_blocked_pct": 0.0,
    "traffic_reverted_pct": 0.0,
    "hotfix_deploy_minutes": 0.0,
    "regression_pass_pct": 100.0,
    "affected_users": 100.0,
    "complaints_per_hour": 3.0,
    "slice_accuracy": 0.93,
    "slice_p95_latency_ms": 300.0,
    "slice_memory_gb": 12.0,
    "slice_error_rate": 0.001,
    "slice_throughput_rps": 80.0,
}
FAULTY = {"error_rate": 0.05, "p95_latency_ms": 1200.0, "anomaly_score": 4.0, "accuracy": 0.70, "override_rate": 0.3}


def readings(pb: Playbook, days: int) -> dict[str, list[Reading]]:
    """A reading a minute per external signal, healthy with noise, and a 90-minute fault every 5 days."""
    rnd = random.Random(7)
    minutes = days * 24 * 60
    out: dict[str, list[Reading]] = {}
    for name, spec in pb.signals.items():
        if spec.builtin is not None:
            continue
        base, bad = HEALTHY[name], FAULTY.get(name)
        series = []
        for k in range(minutes):
            faulty = bad is not None and k % 7200 >= 7110  # the last 90 minutes of every 5 days
            value = (bad if faulty else base) * (1 + rnd.uniform(-0.02, 0.02))  # type: ignore[operator]
            series.append(Reading(name, START + timedelta(minutes=k), value))
        out[name] = series
    return out


def reference(series: dict[str, list[Reading]]) -> float:
    total = 0.0
    for rs in series.values():
        for r in rs:
            if r.value is not None:
                total += r.value
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    pb = load_playbook(PLAYBOOK).playbook
    series = readings(pb, args.days)
    count = sum(len(v) for v in series.values())
    end = START + timedelta(days=args.days) - timedelta(minutes=1)
    replay_s, reference_s = [], []
    result = None
    for _ in range(args.runs):
        t = time.perf_counter()
        reference(series)
        reference_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        result = replay(pb, series, START, end)
        replay_s.append(time.perf_counter() - t)
    assert result is not None
    took, ref = statistics.median(replay_s), statistics.median(reference_s)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"playbook {pb.name}: {len(pb.signals)} signals ({len(series)} with readings), {len(pb.triggers)} triggers")
    print(f"{args.days} days: {count:,} readings, {result.evaluations:,} evaluations (every poll, as live)")
    print(f"replay: {took:.2f} s median of {args.runs} ({', '.join(f'{s:.2f}' for s in replay_s)})")
    print(f"rate: {count / took:,.0f} readings/s, {result.evaluations / took:,.0f} evaluations/s")
    print(f"reference (bare loop over the readings): {ref * 1000:.1f} ms; replay / reference = {took / ref:,.0f}x")
    print(f"found: {len(result.firings)} firings, {len(result.incidents)} incidents")
    print(f"load average: {load} on {os.cpu_count()} cores")
    ok = took < TARGET_S and not math.isnan(took)
    print(f"target under {TARGET_S:g} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
