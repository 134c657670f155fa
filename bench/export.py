"""Benchmark exports: an incident with 100,000 events (and a day of readings for its charts), exported in
each format, with --verify, and `audit verify`, each as the whole `rollback-bot` process (imports included).
Prints the median wall time of three runs, the ratio to `sqlite3 -json` dumping the same rows measured in the
same run (SQLite), the median CPU time, peak RSS, and the load average; exits 1 over target. Target: every
export under 2 s and 150 MB; `export --verify` and `audit verify` under 3 s and 150 MB.

    .venv/bin/python bench/export.py [--events 100000] [--database URL]

A PostgreSQL URL is used in a schema of the bench's own, dropped at the end, so the run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from rollback_bot.export.formats import FORMATS
from rollback_bot.store import Event, Incident, ReadingRow, Store
from rollback_bot.store.chain import GENESIS, event_hash
from rollback_bot.store.models import ChainHead

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "playbooks" / "genai-release.yaml"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
KINDS = ["note", "approval", "approval.denied", "action.succeeded", "reminder", "signal.restored"]


def seed(url: str, n: int) -> None:
    store = Store(url)
    text = PLAYBOOK.read_text()
    with store.session() as s:
        s.add(
            Incident(
                id=1,
                playbook="genai-release",
                playbook_version="bench",
                playbook_path=str(PLAYBOOK),
                playbook_text=text,
                service="support-copilot",
                channel="#ml-release-ops",
                severity="critical",
                trigger="fatal-errors",
                summary="fatal-errors: fatal_error_rate > 0",
                evidence={"since": T0.isoformat(), "evidence": [{"signal": "fatal_error_rate", "value": 0.02}]},
                opened_at=T0,
                status="resolved",
                resolved_at=T0 + timedelta(hours=24),
                resolved_by="U0IC",
            )
        )
        s.commit()
    rows, prev = [], GENESIS
    for i in range(1, n + 1):
        kind = "signal.fired" if i == 1 else KINDS[i % len(KINDS)]
        at = T0 + timedelta(seconds=i * 86400 / n)
        actor = f"U{i % 7}" if kind != "signal.restored" else None
        details: dict[str, object] = {
            "name": f"Person {i % 7}",
            "text": f"event {i}: rolled back slice {i % 100}%",
            "values": {"fatal_error_rate": {"value": 0.0}, "p95_latency_ms": {"value": 310.5 + i % 9}},
        }
        if kind == "signal.fired":  # what opened the incident: its chart is part of every export with charts
            details = {
                "trigger": "fatal-errors",
                "severity": "critical",
                "rule": "fatal_error_rate > 0",
                "evidence": [{"signal": "fatal_error_rate", "value": 0.02, "rule": "fatal_error_rate > 0"}],
            }
        summary = f"{kind} number {i} by {actor or 'the bot'}"
        h = event_hash(
            chain="incident:1",
            seq=i,
            prev_hash=prev,
            incident_id=1,
            playbook="genai-release",
            at=at,
            kind=kind,
            actor=actor,
            role="approver" if actor else None,
            summary=summary,
            details=details,
        )
        rows.append(
            {
                "incident_id": 1,
                "playbook": "genai-release",
                "at": at,
                "kind": kind,
                "actor": actor,
                "role": "approver" if actor else None,
                "summary": summary,
                "details": details,
                "chain": "incident:1",
                "seq": i,
                "prev_hash": prev,
                "hash": h,
            }
        )
        prev = h
    readings = [
        {
            "playbook": "genai-release",
            "signal": sig,
            "at": T0 + timedelta(seconds=30 * k),
            "value": (0.02 if k < 600 else 0.0) if sig == "fatal_error_rate" else 300.0 + k % 50,
            "status": "ok",
            "detail": "",
        }
        for sig in ("fatal_error_rate", "error_rate")
        for k in range(2880)
    ]
    with store.engine.begin() as conn:
        for k in range(0, len(rows), 10000):
            conn.execute(sa.insert(Event), rows[k : k + 10000])
        conn.execute(sa.insert(ReadingRow), readings)
        conn.execute(sa.insert(ChainHead).values(chain="incident:1", seq=n, hash=prev))
        # the KPI gate and the error jump also fired, so the charts have several signals to draw
        note = {"playbook": "genai-release", "at": T0, "kind": "note", "summary": "x", "details": {}}
        chained = {"chain": "playbook:genai-release", "seq": 1, "prev_hash": GENESIS}
        digest = event_hash(**note, **chained, incident_id=None, actor=None, role=None)  # type: ignore[arg-type]
        conn.execute(sa.insert(Event).values(**note, **chained, incident_id=None, hash=digest))
        conn.execute(sa.insert(ChainHead).values(chain="playbook:genai-release", seq=1, hash=digest))
    store.close()


def whole(cmd: list[str]) -> tuple[float, float, float]:
    """One run of a command in a fresh process: wall seconds, CPU seconds (user + system, which a busy
    shared machine disturbs less) and peak RSS in MB, from /usr/bin/time, whose own small image is what the
    child starts from (a child of this process would inherit its peak)."""
    started = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", *cmd], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
    user, system, kb = out.stderr.strip().splitlines()[-1].split()
    return seconds, float(user) + float(system), int(kb) / 1024


def median_of_3(cmd: list[str]) -> tuple[float, float, float, list[float]]:
    """Median wall and CPU seconds of three runs (a shared VM is noisy), the largest peak RSS, the runs."""
    runs = [whole(cmd) for _ in range(3)]
    times = [r[0] for r in runs]
    return sorted(times)[1], sorted(r[1] for r in runs)[1], max(r[2] for r in runs), times


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def byte_compiled() -> None:
    """The package byte-compiled first, as pip compiles one it installs: a checkout run with
    PYTHONDONTWRITEBYTECODE set (as CI and these machines set it) would compile every module of ours in every
    run, which is not what a user's export does."""
    import compileall

    compileall.compile_dir(ROOT / "src" / "rollback_bot", quiet=1)


@contextlib.contextmanager
def database(url: str | None, tmp: str) -> Iterator[str]:
    """A new SQLite file, or a new schema of the PostgreSQL database given (dropped afterwards), as a URL."""
    if url is None or not url.startswith("postgresql"):
        yield url or f"sqlite:///{tmp}/bench.db"
        return
    schema = f"bench_export_{os.getpid()}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--database")
    args = parser.parse_args()
    byte_compiled()
    with tempfile.TemporaryDirectory() as tmp, database(args.database, tmp) as url:
        started = time.perf_counter()
        seed(url, args.events)
        print(
            f"seeded {args.events:,} events and 5,760 readings in {time.perf_counter() - started:.1f} s "
            f"({url.split(':')[0]}); load average {load()}"
        )
        ref = None
        if url.startswith("sqlite") and shutil.which("sqlite3"):
            query = "select * from event where incident_id = 1 order by seq"
            dump = f"sqlite3 -json {url.removeprefix('sqlite:///')} '{query}' >/dev/null"
            ref, ref_cpu, ref_mb, runs = median_of_3(["sh", "-c", dump])
            print(
                f"reference, sqlite3 -json of the same rows: {ref:.2f} s ({_runs(runs)}), CPU {ref_cpu:.2f} s, "
                f"{ref_mb:.0f} MB"
            )
        cli = [sys.executable, "-m", "rollback_bot.cli"]
        cases = [
            *[
                (fmt, [*cli, "export", "1", "--format", fmt, "--out", f"{tmp}/incident-1.{fmt}"], 2.0)
                for fmt in FORMATS
            ],
            ("json --verify", [*cli, "export", "1", "--format", "json", "--verify", "--out", f"{tmp}/v.json"], 3.0),
            ("audit verify", [*cli, "audit", "verify"], 3.0),
        ]
        missed = []
        for name, cmd, target in cases:
            seconds, cpu, mb, runs = median_of_3([*cmd, "--database", url])
            ok = seconds < target and mb < 150
            ratio = f", {seconds / ref:.1f}x the reference" if ref else ""
            print(
                f"{name:>13}: {seconds:.2f} s ({_runs(runs)}){ratio}, CPU {cpu:.2f} s, peak RSS {mb:.0f} MB; "
                f"target {target:.0f} s, 150 MB: {'ok' if ok else 'OVER TARGET'}"
            )
            if not ok:
                missed.append(name)
        print(f"load average at the end {load()}")
    print("all under target" if not missed else f"over target: {', '.join(missed)}")
    return 1 if missed else 0


def _runs(times: list[float]) -> str:
    return "runs " + ", ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    sys.exit(main())
