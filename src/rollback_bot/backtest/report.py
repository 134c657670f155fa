"""A backtest's result as a table (text), JSON or CSV."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import datetime, timedelta
from typing import IO, Any

from rollback_bot.backtest.replay import Replay
from rollback_bot.backtest.rollout import Gate, WindowVerdict
from rollback_bot.backtest.score import Score
from rollback_bot.playbook.durations import format_duration
from rollback_bot.rollout.gate import describe


def _t(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def _d(d: timedelta | None) -> str:
    if d is None:
        return "-"
    sign = "-" if d < timedelta(0) else ""
    seconds = round(abs(d.total_seconds()))
    return sign + (format_duration(timedelta(seconds=seconds)) if seconds else "0s")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _evidence(values: list[dict[str, Any]]) -> str:
    def shown(v: object) -> str:
        return "no data" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{e['signal']}={shown(e['value'])}" for e in values)


def as_dict(result: Replay, scores: list[Score] | None, notes: list[str]) -> dict[str, Any]:
    end = result.end
    doc: dict[str, Any] = {
        "playbook": result.playbook,
        "from": result.start.isoformat(),
        "to": end.isoformat(),
        "evaluations": result.evaluations,
        "readings": result.readings,
        "notes": notes,
        "firings": [
            {
                "trigger": f.trigger,
                "severity": f.severity,
                "rule": f.rule,
                "pending_since": f.pending_since.isoformat() if f.pending_since else None,
                "fired_at": f.fired_at.isoformat(),
                "cleared_at": f.cleared_at.isoformat() if f.cleared_at else None,
                "seconds": f.lasted(end).total_seconds(),
                "note": f.decision.note,
                "evidence": [e.as_dict() for e in f.decision.evidence],
            }
            for f in result.firings
        ],
        "incidents": [
            {
                "opened_at": i.opened_at.isoformat(),
                "resolved_at": i.resolved_at.isoformat() if i.resolved_at else None,
                "seconds": i.lasted(end).total_seconds(),
                "trigger": i.trigger,
                "triggers": i.triggers,
                "severity": i.severity,
            }
            for i in result.incidents
        ],
        "holds": [{"trigger": name, "at": at.isoformat()} for name, at in result.holds],
    }
    if result.gate is not None:
        doc["rollout_gate"] = _gate_dict(result.gate)
    if scores is not None:
        doc["scores"] = [
            {
                "trigger": s.trigger,
                "detected": [
                    {"start": k.start.isoformat(), "label": k.label, "delay_seconds": d.total_seconds()}
                    for k, d in s.delays
                ],
                "misses": [
                    {"start": k.start.isoformat(), "end": k.end.isoformat(), "label": k.label} for k in s.misses
                ],
                "false_alarms": [at.isoformat() for at in s.false_alarms],
                "median_delay_seconds": s.median_delay.total_seconds() if s.median_delay is not None else None,
            }
            for s in scores
        ]
    return doc


def _gate_dict(gate: Gate) -> dict[str, Any]:
    def kpi(w: WindowVerdict) -> dict[str, Any] | None:
        c = w.lowest_kpi
        if c is None:
            return None
        return {"segment": c.segment, "difference": c.difference, "baseline": c.baseline, "candidate": c.candidate}

    return {
        "stage": gate.stage,
        "window_seconds": gate.window.total_seconds(),
        "windows": [
            {
                "start": w.start.isoformat(),
                "end": w.end.isoformat(),
                "verdict": w.decision.verdict,
                "why": w.decision.why,
                "sample": w.decision.sample,
                "min_sample": w.decision.min_sample,
                "lowest_kpi": kpi(w),
                "worse": [describe(c) for c in w.decision.worse],
            }
            for w in gate.windows
        ],
    }


def _kpi_cell(w: WindowVerdict) -> str:
    c = w.lowest_kpi
    if c is None or c.difference is None:
        return "-"
    return f"{c.difference:+.4g}" + (f" ({c.segment})" if c.segment else "")


def write_gate(gate: Gate, fp: IO[str]) -> None:
    first = gate.windows[0].decision if gate.windows else None
    bar = f", min sample {first.min_sample:,}, min duration {_d(first.min_duration)}" if first else ""
    print(f"\nRollout gate, a verdict per {_d(gate.window)} window (each judged as stage {gate.stage}{bar})", file=fp)
    counts = Counter(w.decision.verdict for w in gate.windows)
    print(", ".join(f"{v} {counts[v]}" for v in ("GO", "HOLD", "ROLLBACK", "NOT ENOUGH DATA")), file=fp)
    rows = [
        [
            _t(w.start),
            _t(w.end),
            w.decision.verdict,
            f"{w.decision.sample:,.0f}",
            _kpi_cell(w),
            _clip("; ".join(w.decision.why), 100),
        ]
        for w in gate.windows
    ]
    print(_table(["from", "to", "verdict", "sample", "lowest KPI difference", "why"], rows), file=fp)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def write_table(result: Replay, scores: list[Score] | None, notes: list[str], fp: IO[str]) -> None:
    end = result.end
    print(
        f"backtest of {result.playbook} from {_t(result.start)} to {_t(end)} UTC: "
        f"{result.evaluations:,} evaluations of {result.readings:,} readings",
        file=fp,
    )
    for note in notes:
        print(f"note: {note}", file=fp)
    print(f"\nTriggers ({len(result.firings)} firings)", file=fp)
    rows = [
        [
            f.trigger,
            f.severity,
            _t(f.fired_at),
            _t(f.cleared_at) if f.cleared_at else "still firing",
            _d(f.lasted(end)),
            _evidence([e.as_dict() for e in f.decision.evidence]),
        ]
        for f in result.firings
    ]
    print(_table(["trigger", "severity", "fired", "cleared", "lasted", "evidence at firing"], rows), file=fp)
    print(f"\nIncidents that would have opened ({len(result.incidents)}; resolved when every trigger clears)", file=fp)
    rows = [
        [
            str(n),
            _t(i.opened_at),
            _t(i.resolved_at) if i.resolved_at else "still open",
            _d(i.lasted(end)),
            i.severity,
            ", ".join(i.triggers),
        ]
        for n, i in enumerate(result.incidents, 1)
    ]
    print(_table(["#", "opened", "resolved", "lasted", "severity", "triggers"], rows), file=fp)
    if result.gate is not None:
        write_gate(result.gate, fp)
    if result.holds:
        print(f"\nKPI gate HOLDs: {len(result.holds)} (first {_t(result.holds[0][1])})", file=fp)
    if scores is not None:
        print("\nAgainst the known incidents", file=fp)
        rows = [
            [
                s.trigger,
                f"{len(s.delays)}/{len(s.delays) + len(s.misses)}",
                _d(s.median_delay),
                ", ".join(_d(d) for _, d in s.delays) or "-",
                str(len(s.false_alarms)),
                str(len(s.misses)),
            ]
            for s in scores
        ]
        headers = ["trigger", "detected", "median delay", "delays", "false alarms", "misses"]
        print(_table(headers, rows), file=fp)


def write_csv(result: Replay, scores: list[Score] | None, fp: IO[str]) -> None:
    """One row per firing, incident, gate window and score: record,trigger,start,end,seconds,severity,detail
    (a gate window: record `gate`, trigger `rollout`, its verdict under severity and its reasons as detail)."""
    out = csv.writer(fp, lineterminator="\n")
    out.writerow(["record", "trigger", "start", "end", "seconds", "severity", "detail"])
    end = result.end
    for f in result.firings:
        cleared = f.cleared_at.isoformat() if f.cleared_at else ""
        detail = _evidence([e.as_dict() for e in f.decision.evidence])
        out.writerow(
            ["firing", f.trigger, f.fired_at.isoformat(), cleared, f.lasted(end).total_seconds(), f.severity, detail]
        )
    for i in result.incidents:
        resolved = i.resolved_at.isoformat() if i.resolved_at else ""
        out.writerow(
            [
                "incident",
                i.trigger,
                i.opened_at.isoformat(),
                resolved,
                i.lasted(end).total_seconds(),
                i.severity,
                " ".join(i.triggers),
            ]
        )
    for w in result.gate.windows if result.gate is not None else []:
        seconds = (w.end - w.start).total_seconds()
        why = "; ".join(w.decision.why)
        out.writerow(["gate", "rollout", w.start.isoformat(), w.end.isoformat(), seconds, w.decision.verdict, why])
    for s in scores or []:
        median = s.median_delay.total_seconds() if s.median_delay is not None else ""
        detail = f"detected {len(s.delays)}; false alarms {len(s.false_alarms)}; misses {len(s.misses)}"
        out.writerow(["score", s.trigger, "", "", median, "", detail])


def write(fmt: str, result: Replay, scores: list[Score] | None, notes: list[str], fp: IO[str]) -> None:
    if fmt == "json":
        json.dump(as_dict(result, scores, notes), fp, indent=2)
        fp.write("\n")
    elif fmt == "csv":
        write_csv(result, scores, fp)
    else:
        write_table(result, scores, notes, fp)
