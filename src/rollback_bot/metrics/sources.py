"""Metric sources: Prometheus instant queries and JSON endpoints, read through a passed-in Session.

A source says what to fetch (`endpoint`, `params`) and how to read the answer (`interpret`); the fetch
itself (deadline, size cap) is `metrics.fetch` and running many at once is `metrics.reader`. A source
never raises out of `read`: every failure becomes a Reading with status 'error' (the source is broken)
or 'nodata' (it answered, but with nothing usable), carrying the reason.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import requests

from rollback_bot.metrics.endpoint import Endpoint
from rollback_bot.metrics.fetch import DEFAULT_MAX_BYTES, Answer, get_json
from rollback_bot.playbook.durations import format_duration
from rollback_bot.rules.readings import Reading
from rollback_bot.secrets import redact

_MAX_DETAIL = 300
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL = {"NaN": math.nan, "+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf}
NUMERIC_STRINGS_HINT = "set numeric_strings: true on the signal if the endpoint sends numbers as text"


class MetricSource(Protocol):
    """What to fetch for one signal, and how to turn the answer into its Reading."""

    signal: str
    endpoint: Endpoint
    timeout: float

    def params(self, asked_at: datetime) -> dict[str, str]: ...

    def share_key(self) -> object: ...

    def interpret(self, answer: Answer, at: datetime) -> Reading: ...


def short(text: str) -> str:
    """One line of at most _MAX_DETAIL characters (cut only after redaction: a cut may split a secret)."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def number_text(text: str) -> float | None:
    """A plain ASCII decimal, NaN, +Inf, -Inf or Inf as a float; None for anything else ("0x10", " 5")."""
    if text in _SPECIAL:
        return _SPECIAL[text]
    if not _DECIMAL.fullmatch(text):
        return None
    return float(text)


def read_one(source: MetricSource, session: requests.Session, now: datetime, max_bytes: int) -> Reading:
    """Fetch and interpret one source now (no thread pool): for tests, the drill and one-off reads."""
    try:
        answer = get_json(session, source.endpoint, source.params(now), source.timeout, max_bytes, now)
        reading = source.interpret(answer, now)
    except Exception as exc:
        reading = Reading.error(source.signal, now, f"cannot read the answer: {type(exc).__name__}")
    return redacted(source, reading)


def redacted(source: MetricSource, reading: Reading) -> Reading:
    """The reading with every secret of the source's connection removed from its detail, then cut short."""
    if not reading.detail:
        return reading
    try:
        secrets = source.endpoint.secrets()
    except Exception:
        return replace(reading, detail="(detail withheld: the source's secrets could not be read)")
    return replace(reading, detail=short(redact(reading.detail, secrets)))


def _endpoint(where: str | Endpoint) -> Endpoint:
    return where if isinstance(where, Endpoint) else Endpoint(where)


class PrometheusSource:
    """An instant query over Prometheus' HTTP API (`GET /api/v1/query?query=...&time=...`)."""

    def __init__(
        self, signal: str, base: str | Endpoint, query: str, timeout: float, *, max_age: timedelta | None = None
    ) -> None:
        self.signal, self.query, self.timeout, self.max_age = signal, query, timeout, max_age
        self.endpoint = _endpoint(base).at("/api/v1/query")

    def params(self, asked_at: datetime) -> dict[str, str]:
        return {"query": self.query, "time": f"{asked_at.timestamp():.3f}"}

    def share_key(self) -> object:
        return (self.endpoint, self.query)

    def read(self, session: requests.Session, now: datetime, max_bytes: int = DEFAULT_MAX_BYTES) -> Reading:
        return read_one(self, session, now, max_bytes)

    def interpret(self, answer: Answer, at: datetime) -> Reading:
        body = answer.doc
        if answer.failure and not answer.status:
            return Reading.error(self.signal, at, f"prometheus {answer.failure}")
        if answer.failure or not isinstance(body, dict):
            what = answer.failure or "answered with unexpected JSON"
            excerpt = f": '{answer.excerpt}'" if answer.excerpt else ""
            hint = "; check headers / basic_auth under sources.prometheus" if answer.status in (401, 403) else ""
            return Reading.error(self.signal, at, f"prometheus HTTP {answer.status}, {what}{excerpt}{hint}")
        if body.get("status") != "success":
            kind = body.get("errorType", f"HTTP {answer.status}")
            return Reading.error(self.signal, at, f"prometheus {kind}: {body.get('error', 'unknown error')}")
        notes = _notes(body)
        data = body.get("data")
        reading = self._parse(data if isinstance(data, dict) else {}, answer.asked_at, at)
        if notes:
            reading = replace(reading, detail=f"{reading.detail}; {notes}" if reading.detail else notes)
        return reading

    def _parse(self, data: dict[str, Any], asked_at: datetime, at: datetime) -> Reading:
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            return self._sample(result, asked_at, at)
        if kind == "vector" and isinstance(result, list):
            if not result:
                return Reading.nodata(self.signal, at, "empty result")
            if len(result) > 1:
                return Reading.error(
                    self.signal, at, f"query returned {len(result)} series; aggregate it to one (sum, max, ...)"
                )
            series = result[0] if isinstance(result[0], dict) else {}
            if "histogram" in series:
                return Reading.error(self.signal, at, "query returned a native histogram; read a number from it")
            return self._sample(series.get("value"), asked_at, at)
        return Reading.error(self.signal, at, f"result type '{kind}' is not supported; use an instant vector")

    def _sample(self, pair: Any, asked_at: datetime, at: datetime) -> Reading:
        stamp, text = pair if isinstance(pair, list) and len(pair) == 2 else (None, None)
        value = number_text(text) if isinstance(text, str) else None
        if value is None or isinstance(stamp, bool) or not isinstance(stamp, int | float) or not math.isfinite(stamp):
            return Reading.error(self.signal, at, f"cannot read sample {pair!r}")
        try:
            sampled = datetime.fromtimestamp(stamp, tz=asked_at.tzinfo or UTC)
        except (OverflowError, ValueError, OSError):
            return Reading.error(self.signal, at, f"sample timestamp {stamp!r} is not a time")
        age = asked_at - sampled
        ahead_by = sampled - at  # against when the answer arrived: nothing is stamped after it was received
        if self.max_age is not None and ahead_by > self.max_age:  # a frozen sample stamped ahead never goes stale
            ahead = format_duration(timedelta(seconds=round(ahead_by.total_seconds())))
            return Reading.error(
                self.signal, at, f"sample stamped {ahead} in the future ({sampled:%Y-%m-%d %H:%M:%S}): clocks disagree"
            )
        if self.max_age is not None and age > self.max_age:
            return Reading.stale(self.signal, at, f"sample stamped {sampled:%H:%M:%S}, {format_duration(age)} old")
        return Reading.of(self.signal, at, value)


def _notes(body: dict[str, Any]) -> str:
    """Prometheus' warnings and infos (a partial answer, a lossy query): kept on the reading's detail."""
    out: list[str] = []
    for key, label in (("warnings", "warning"), ("infos", "info")):
        items = body.get(key)
        if isinstance(items, list):
            out += [f"prometheus {label}: {item}" for item in items[:5]]
    return "; ".join(out)


_PATH_PART = re.compile(r"([^.\[\]]+)|\[([0-9]+)\]")


def json_path(doc: Any, path: str) -> Any:
    """'kpi.accuracy', 'models[0].latency' or 'models.0.latency' -> the value; KeyError names what is missing."""
    cur = doc
    for name, index in _PATH_PART.findall(path):
        numeric = name.isascii() and name.isdigit() and isinstance(cur, list)
        key: str | int = int(index) if index else (int(name) if numeric else name)
        try:
            cur = cur[key]
        except (KeyError, IndexError, TypeError):
            raise KeyError(f"field '{path}' not found (stopped at '{key}')") from None
    return cur


def _json_kind(value: Any) -> str:
    kinds = ((bool, "a boolean"), (str, "a string"), (dict, "an object"), (list, "an array"), (int | float, "a number"))
    return next((name for t, name in kinds if isinstance(value, t)), "null")


class JsonSource:
    """A numeric field of a JSON document served over HTTP."""

    def __init__(
        self, signal: str, url: str | Endpoint, path: str, timeout: float, *, numeric_strings: bool = False
    ) -> None:
        self.signal, self.path, self.timeout, self.numeric_strings = signal, path, timeout, numeric_strings
        self.endpoint = _endpoint(url)

    @property
    def url(self) -> str:
        return self.endpoint.url

    def params(self, asked_at: datetime) -> dict[str, str]:
        return {}

    def share_key(self) -> object:
        return (self.endpoint, None)

    def read(self, session: requests.Session, now: datetime, max_bytes: int = DEFAULT_MAX_BYTES) -> Reading:
        return read_one(self, session, now, max_bytes)

    def interpret(self, answer: Answer, at: datetime) -> Reading:
        if answer.status and answer.status != 200:
            return Reading.error(self.signal, at, f"HTTP {answer.status} from {self.url}")
        if answer.failure:
            excerpt = f": '{answer.excerpt}'" if answer.excerpt else ""
            return Reading.error(self.signal, at, f"{answer.failure}{excerpt}")
        return self.extract(answer.doc, at)

    def extract(self, doc: Any, at: datetime) -> Reading:
        """The number at `path` in a parsed document."""
        if not isinstance(doc, dict | list):
            return Reading.error(
                self.signal, at, f"answer is {_json_kind(doc)}, not an object or array; '{self.path}' is not in it"
            )
        try:
            value = json_path(doc, self.path)
        except KeyError as exc:
            return Reading.error(self.signal, at, str(exc.args[0]))
        if value is None:
            return Reading.nodata(self.signal, at, f"'{self.path}' is null")
        if isinstance(value, str):
            return self._text(value, at)
        if isinstance(value, bool):
            return Reading.error(self.signal, at, f"'{self.path}' is a boolean ({json.dumps(value)}), not a number")
        if not isinstance(value, int | float):
            return Reading.error(self.signal, at, f"'{self.path}' is {_json_kind(value)}, not a number")
        try:
            return Reading.of(self.signal, at, float(value))
        except OverflowError:
            return Reading.error(self.signal, at, f"'{self.path}' is a number too large to read")

    def _text(self, value: str, at: datetime) -> Reading:
        number = number_text(value)
        shown = json.dumps(value, ensure_ascii=False)  # whole: cutting before redaction could split a secret
        if number is None:
            return Reading.error(self.signal, at, f"'{self.path}' is not a number: {shown}")
        if not self.numeric_strings:
            return Reading.error(
                self.signal, at, f"'{self.path}' is a string ({shown}), not a number; {NUMERIC_STRINGS_HINT}"
            )
        return Reading.of(self.signal, at, number)
