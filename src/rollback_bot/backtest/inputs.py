"""What a backtest reads from files: readings (CSV `time,signal,value` or JSON) and known bad periods
(CSV `start,end[,label]` or JSON). Every problem is a BadInput naming the file and line."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollback_bot.metrics.sources import number_text
from rollback_bot.playbook.models import Playbook
from rollback_bot.rollout.gate import Point, Version
from rollback_bot.rules.readings import Reading


class BadInput(Exception):
    """Input the backtest cannot use; the message is one line for the user."""


@dataclass(frozen=True)
class KnownIncident:
    start: datetime
    end: datetime
    label: str = ""


def parse_time(text: object) -> datetime:
    """ISO 8601 (a time without zone is UTC) or Unix seconds; ValueError otherwise."""
    if isinstance(text, bool):
        raise ValueError(f"not a time: {text!r}")
    if isinstance(text, int | float):
        return datetime.fromtimestamp(float(text), tz=UTC)
    s = str(text).strip()
    number = number_text(s)
    if number is not None and math.isfinite(number):
        return datetime.fromtimestamp(number, tz=UTC)
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {s!r} (write ISO 8601, e.g. 2026-03-01T09:00:00Z, or Unix seconds)") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _value(signal: str, at: datetime, raw: object) -> Reading:
    """A value as the live source reads it: a number is a reading; empty, null or NaN is no data."""
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return Reading.nodata(signal, at, "no value recorded")
    if isinstance(raw, bool):
        raise ValueError(f"value {raw!r} is not a number")
    number = float(raw) if isinstance(raw, int | float) else number_text(str(raw).strip())
    if number is None:
        raise ValueError(f"value {raw!r} is not a number")
    return Reading.of(signal, at, number)


def read_readings(path: Path, pb: Playbook) -> dict[str, list[Reading]]:
    """Readings by signal, for the triggers (see read_history)."""
    return read_history(path, pb)[0]


def read_history(path: Path, pb: Playbook) -> tuple[dict[str, list[Reading]], list[Point]]:
    """Readings by signal for the triggers, and the rollout's points (per version and segment) for its gate.

    CSV: a header `time,signal,value` and optionally `version` and `segment` columns (in any order when the
    header names them), a row a reading. JSON: a list of {"time", "signal", "value", "version"?, "segment"?}
    objects, or an object of signal -> [[time, value], ...]. A signal read per version (`{version}`) needs the
    version: the rollout's baseline or candidate name (or the words baseline, candidate); a segment is written
    as the live bot keys it (`urgency=high` for Prometheus labels, the object's key for JSON)."""
    text = _text(path)
    rows = _json_rows(path, text) if _is_json(path, text) else _csv_rows(path, text, ("time", "signal", "value"))
    series: dict[str, list[Reading]] = {}
    points: list[Point] = []
    rollout_signals = set(pb.rollout.signals) if pb.rollout is not None else set()
    for where, time, signal, value, version, segment in rows:
        name = str(signal).strip()
        if name not in pb.signals:
            raise BadInput(f"{where}: unknown signal '{name}' (playbook {pb.name} has no such signal)")
        spec = pb.signals[name]
        if spec.builtin is not None:
            raise BadInput(f"{where}: '{name}' is measured by the bot itself (builtin); it cannot be replayed")
        try:
            at = parse_time(time)
            reading = _value(name, at, value)
        except (ValueError, OverflowError, OSError) as exc:
            raise BadInput(f"{where}: {exc}") from None
        role = _version(where, pb, name, version)
        segment = str(segment or "").strip()
        if segment and not spec.segments:
            raise BadInput(f"{where}: '{name}' is not read per segment (the playbook gives it no segments)")
        if name in rollout_signals and reading.value is not None:
            points.append(Point(name, role, segment, at, reading.value))
        if not spec.compared and not spec.segments:
            series.setdefault(name, []).append(reading)
    for readings in series.values():
        readings.sort(key=lambda r: r.at)
    return series, sorted(points, key=lambda p: p.at)


def _version(where: str, pb: Playbook, signal: str, given: object) -> Version:
    """The role of the version a row names: a compared signal needs one; any other is the candidate's, as live."""
    text = str(given or "").strip()
    compared = pb.signals[signal].compared
    ro = pb.rollout
    if ro is None or not compared:
        if text and text not in ("candidate", ro.candidate if ro else "candidate"):
            raise BadInput(f"{where}: '{signal}' is not read per version; leave the version empty")
        return "candidate"
    names: dict[str, Version] = {ro.baseline: "baseline", ro.candidate: "candidate"}
    names |= {"baseline": "baseline", "candidate": "candidate"}
    if text not in names:
        said = f"'{text}'" if text else "none"
        raise BadInput(
            f"{where}: '{signal}' is read per version: give the version ({ro.baseline} or {ro.candidate}), not {said}"
        )
    return names[text]


def read_incidents(path: Path) -> list[KnownIncident]:
    """Known bad periods. CSV: `start,end[,label]`. JSON: a list of {"start", "end", "label"?}."""
    text = _text(path)
    if _is_json(path, text):
        doc = _json(path, text)
        if not isinstance(doc, list):
            raise BadInput(f"{path}: expected a JSON list of {{start, end, label}} objects")
        rows = [(f"{path}: item {i + 1}", d) for i, d in enumerate(doc)]
    else:
        rows = [
            (where, {"start": a, "end": b, "label": c}) for where, a, b, c in _csv_rows(path, text, ("start", "end"))
        ]
    out = []
    for where, item in rows:
        if not isinstance(item, dict) or "start" not in item or "end" not in item:
            raise BadInput(f"{where}: needs start and end")
        try:
            start, end = parse_time(item["start"]), parse_time(item["end"])
        except (ValueError, OverflowError, OSError) as exc:
            raise BadInput(f"{where}: {exc}") from None
        if end <= start:
            raise BadInput(f"{where}: ends before it starts")
        out.append(KnownIncident(start, end, str(item.get("label") or "")))
    return sorted(out, key=lambda k: k.start)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text") from None


def _is_json(path: Path, text: str) -> bool:
    return path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{")


def _json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None


def _json_rows(path: Path, text: str) -> Iterable[tuple[str, object, object, object, object, object]]:
    doc = _json(path, text)
    if isinstance(doc, dict):
        for signal, pairs in doc.items():
            if not isinstance(pairs, list):
                raise BadInput(f"{path}: '{signal}': expected a list of [time, value] pairs")
            for i, pair in enumerate(pairs):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise BadInput(f"{path}: '{signal}' item {i + 1}: expected [time, value]")
                yield f"{path}: '{signal}' item {i + 1}", pair[0], signal, pair[1], None, None
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            if not isinstance(item, dict) or not {"time", "signal"} <= item.keys():
                raise BadInput(f"{path}: item {i + 1}: expected an object with time, signal and value")
            yield (
                f"{path}: item {i + 1}",
                item["time"],
                item["signal"],
                item.get("value"),
                item.get("version"),
                item.get("segment"),
            )
    else:
        raise BadInput(f"{path}: expected a JSON list of readings or an object of signal -> [[time, value], ...]")


def _csv_rows(path: Path, text: str, header: tuple[str, ...]) -> Iterable[tuple[Any, ...]]:
    """(file:line, then the cells of `header` and of its optional columns, in that order) of each row.
    A first row naming the columns is a header: readings may then have their columns in any order."""
    optional = ("version", "segment") if header[-1] == "value" else ("label",)
    allowed = header + optional
    columns = list(allowed)
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in row]
        if reader.line_num == 1 and cells[0].lower() in allowed:
            named = [c.lower() for c in cells]
            unknown = [c for c in named if c not in allowed]
            if unknown or len(set(named)) != len(named) or not set(header) <= set(named):
                raise BadInput(f"{where}: the header names the columns {', '.join(allowed)} (needs {','.join(header)})")
            columns = named
            continue
        if len(cells) < len(header) or len(cells) > len(columns):
            shown = ",".join(header) + "".join(f"[,{c}" for c in optional) + "]" * len(optional)
            raise BadInput(f"{where}: expected {shown}")
        cell = dict(zip(columns, cells, strict=False))
        yield (where, *(cell.get(c, "") for c in allowed))
