"""A rollout's record: who started it, each stage (entered, the gate's verdicts and why, held, released,
advanced), the traffic webhook's results, refusals, and how it ended, read from the playbook's hash chain.
Part of an incident's export when the rollout opened it; on its own with `rollback-bot export N --rollout`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from sqlmodel import Session, col, select

from rollback_bot.export.document import ExportError, iso
from rollback_bot.store.models import Event, Rollout

SCHEMA = "rollback-bot/rollout-export"
VERSION = 1


def rollout_events(session: Session, rollout: Rollout) -> list[Event]:
    """The rollout's events, in chain order (they are on its playbook's chain, with details.rollout = id)."""
    stmt = (
        select(Event)
        .where(
            Event.playbook == rollout.playbook,
            col(Event.incident_id).is_(None),
            col(Event.kind).startswith("rollout."),
            col(Event.at) >= rollout.started_at,
        )
        .order_by(col(Event.seq), col(Event.id))
    )
    return [ev for ev in session.exec(stmt) if ev.details.get("rollout") == rollout.id]


def _event(ev: Event) -> dict[str, Any]:
    d = ev.details
    out: dict[str, Any] = {
        "at": iso(ev.at),
        "kind": ev.kind,
        "stage": int(d["stage"]) + 1 if isinstance(d.get("stage"), int) else None,
        "actor": ev.actor,
        "role": ev.role,
        "summary": ev.summary,
        "hash": ev.hash,
    }
    if ev.kind == "rollout.verdict":
        out |= {"verdict": d.get("verdict"), "why": d.get("why", []), "worse": d.get("worse", [])}
        out |= {"sample": d.get("sample"), "comparisons": d.get("comparisons", [])}
    if ev.kind == "rollout.traffic":
        out |= {"percent": d.get("percent"), "ok": d.get("ok"), "http_status": d.get("http_status")}
    return out


def build_rollout(session: Session, rollout_id: int) -> dict[str, Any]:
    ro = session.get(Rollout, rollout_id)
    if ro is None:
        raise ExportError(f"no rollout #{rollout_id}")
    events = rollout_events(session, ro)
    stages: list[dict[str, Any]] = []
    for ev in events:
        d = ev.details
        stage = int(d["stage"]) if isinstance(d.get("stage"), int) else 0
        while len(stages) <= stage:
            n = len(stages)
            stages.append({"stage": n + 1, "percent": None, "entered_at": None})
            stages[-1] |= {"verdicts": [], "held": [], "released": [], "left_at": None, "how": None}
        row = stages[stage]
        if ev.kind in ("rollout.started", "rollout.advanced"):
            row |= {"entered_at": iso(ev.at), "percent": d.get("percent")}
            if ev.kind == "rollout.advanced" and stage > 0:
                stages[stage - 1] |= {"left_at": iso(ev.at), "how": f"advanced by {ev.actor} ({ev.role})"}
        elif ev.kind == "rollout.verdict":
            row["verdicts"].append({"at": iso(ev.at), "verdict": d.get("verdict"), "why": d.get("why", [])})
        elif ev.kind == "rollout.held":
            row["held"].append({"at": iso(ev.at), "by": ev.actor or "the gate"})
        elif ev.kind == "rollout.released":
            row["released"].append({"at": iso(ev.at), "by": ev.actor})
        elif ev.kind in ("rollout.completed", "rollout.rolled_back"):
            what = "completed" if ev.kind == "rollout.completed" else "rolled back"
            row |= {"left_at": iso(ev.at), "how": f"{what} by {ev.actor} ({ev.role})"}
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "rollout": {
            "id": ro.id,
            "playbook": ro.playbook,
            "playbook_version": ro.playbook_version,
            "baseline": ro.baseline,
            "candidate": ro.candidate,
            "status": ro.status,
            "stage": ro.stage + 1,
            "traffic": ro.traffic,
            "started_at": iso(ro.started_at),
            "started_by": ro.started_by,
            "finished_at": iso(ro.finished_at),
            "incident_id": ro.incident_id,
        },
        "stages": stages,
        "refusals": [_event(ev) for ev in events if ev.kind == "rollout.denied"],
        "events": [_event(ev) for ev in events],
    }


def for_incident(session: Session, incident_id: int) -> dict[str, Any] | None:
    """The record of the rollout that opened (or was rolled back into) this incident, if one did."""
    ro = session.exec(select(Rollout).where(Rollout.incident_id == incident_id)).first()
    return build_rollout(session, ro.id) if ro is not None and ro.id is not None else None


def write_rollout(doc: dict[str, Any], fmt: str, fp: TextIO) -> None:
    if fmt == "json":
        json.dump(doc, fp, indent=1, ensure_ascii=False, default=str)
        fp.write("\n")
    elif fmt == "md":
        fp.write("\n".join(markdown(doc)) + "\n")
    else:
        raise ExportError(f"a rollout exports as md or json, not {fmt!r}")


def markdown(doc: dict[str, Any], level: str = "#") -> list[str]:
    ro = doc["rollout"]
    lines = [
        f"{level} Rollout #{ro['id']}: {ro['candidate']} against {ro['baseline']} ({ro['playbook']})",
        "",
        f"Started {_t(ro['started_at'])} by {ro['started_by']}; {ro['status'].replace('_', ' ')} at stage "
        f"{ro['stage']}"
        + (f", {_t(ro['finished_at'])}" if ro["finished_at"] else "")
        + (f"; incident #{ro['incident_id']}" if ro["incident_id"] else "")
        + ".",
        "",
        "| stage | traffic | entered | verdicts (why) | held / released | left |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in doc["stages"]:
        verdicts = "<br>".join(f"{_t(v['at'])} **{v['verdict']}**: {_why(v['why'])}" for v in s["verdicts"]) or "-"
        holds = "<br>".join(
            [f"held {_t(h['at'])} by {h['by']}" for h in s["held"]]
            + [f"released {_t(r['at'])} by {r['by']}" for r in s["released"]]
        )
        percent = f"{s['percent']:g}%" if s["percent"] is not None else "-"
        left = f"{_t(s['left_at'])} ({s['how']})" if s["left_at"] else "-"
        lines.append(f"| {s['stage']} | {percent} | {_t(s['entered_at'])} | {verdicts} | {holds or '-'} | {left} |")
    if doc["refusals"]:
        lines += ["", "Refused: " + "; ".join(f"{_t(r['at'])} {r['summary']}" for r in doc["refusals"])]
    return lines


def _why(why: Sequence[str]) -> str:
    return "; ".join(str(w).replace("|", "\\|") for w in why[:3]) or "-"


def _t(at: str | None) -> str:
    return f"{datetime.fromisoformat(at):%Y-%m-%d %H:%M} UTC" if at else "-"
