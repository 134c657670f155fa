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
    """Readings by signal. CSV: a header `time,signal,value`, a row a reading. JSON: a list of
    {"time", "signal", "value"} objects, or an object of signal -> [[time, value], ...]."""
    text = _text(path)
    rows = _json_rows(path, text) if _is_json(path, text) else _csv_rows(path, text, ("time", "signal", "value"))
    out: dict[str, list[Reading]] = {}
    for where, time, signal, value in rows:
        name = str(signal).strip()
        if name not in pb.signals:
            raise BadInput(f"{where}: unknown signal '{name}' (playbook {pb.name} has no such signal)")
        if pb.signals[name].builtin is not None:
            raise BadInput(f"{where}: '{name}' is measured by the bot itself (builtin); it cannot be replayed")
        try:
            at = parse_time(time)
            out.setdefault(name, []).append(_value(name, at, value))
        except (ValueError, OverflowError, OSError) as exc:
            raise BadInput(f"{where}: {exc}") from None
    for readings in out.values():
        readings.sort(key=lambda r: r.at)
    return out


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


def _json_rows(path: Path, text: str) -> Iterable[tuple[str, object, object, object]]:
    doc = _json(path, text)
    if isinstance(doc, dict):
        for signal, pairs in doc.items():
            if not isinstance(pairs, list):
                raise BadInput(f"{path}: '{signal}': expected a list of [time, value] pairs")
            for i, pair in enumerate(pairs):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise BadInput(f"{path}: '{signal}' item {i + 1}: expected [time, value]")
                yield f"{path}: '{signal}' item {i + 1}", pair[0], signal, pair[1]
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            if not isinstance(item, dict) or not {"time", "signal"} <= item.keys():
                raise BadInput(f"{path}: item {i + 1}: expected an object with time, signal and value")
            yield f"{path}: item {i + 1}", item["time"], item["signal"], item.get("value")
    else:
        raise BadInput(f"{path}: expected a JSON list of readings or an object of signal -> [[time, value], ...]")


def _csv_rows(path: Path, text: str, header: tuple[str, ...]) -> Iterable[tuple[str, Any, Any, Any]]:
    """(file:line, first, second, third column) of each row; a header row naming the columns is skipped."""
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in row]
        if reader.line_num == 1 and cells[0].lower() == header[0]:
            continue
        if len(cells) < len(header) or len(cells) > 3:
            raise BadInput(f"{where}: expected {','.join(header)}{'' if len(header) == 3 else '[,label]'}")
        cells += [""] * (3 - len(cells))
        yield where, cells[0], cells[1], cells[2]
