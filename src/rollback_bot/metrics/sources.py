"""Metric sources: Prometheus instant queries and JSON endpoints, read through a passed-in Session.

A source never raises: every failure becomes a Reading with status 'error' (the source is broken) or
'nodata' (it answered, but with nothing usable), carrying the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import requests

from rollback_bot.rules.readings import Reading

_MAX_DETAIL = 300


class MetricSource(Protocol):
    def read(self, session: requests.Session, now: datetime) -> Reading: ...


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


class PrometheusSource:
    """An instant query over Prometheus' HTTP API (`GET /api/v1/query`)."""

    def __init__(self, signal: str, base_url: str, query: str, timeout: float) -> None:
        self.signal, self.query, self.timeout = signal, query, timeout
        self.url = base_url.rstrip("/") + "/api/v1/query"

    def read(self, session: requests.Session, now: datetime) -> Reading:
        try:
            resp = session.get(self.url, params={"query": self.query}, timeout=self.timeout)
        except requests.RequestException as exc:
            return Reading.error(self.signal, now, _short(f"prometheus unreachable: {exc}"))
        try:
            body = resp.json()
        except ValueError:
            return Reading.error(self.signal, now, f"prometheus answered HTTP {resp.status_code} with non-JSON")
        if not isinstance(body, dict):
            return Reading.error(self.signal, now, "prometheus answered with unexpected JSON")
        if body.get("status") != "success":
            kind = body.get("errorType", f"HTTP {resp.status_code}")
            return Reading.error(self.signal, now, _short(f"prometheus {kind}: {body.get('error', 'unknown error')}"))
        return self._parse(body.get("data") or {}, now)

    def _parse(self, data: dict[str, Any], now: datetime) -> Reading:
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            return self._sample(result, now)
        if kind == "vector":
            if not result:
                return Reading.nodata(self.signal, now, "empty result")
            if len(result) > 1:
                return Reading.error(
                    self.signal,
                    now,
                    f"query returned {len(result)} series; aggregate it to one (sum, max, ...)",
                )
            return self._sample(result[0].get("value"), now)
        return Reading.error(self.signal, now, f"result type '{kind}' is not supported; use an instant vector")

    def _sample(self, pair: Any, now: datetime) -> Reading:
        try:
            value = float(pair[1])  # Prometheus sends "NaN", "+Inf", "-Inf" and decimals as strings
        except (TypeError, ValueError, IndexError):
            return Reading.error(self.signal, now, f"cannot read sample {pair!r}")
        return Reading.of(self.signal, now, value)


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def json_path(doc: Any, path: str) -> Any:
    """'kpi.accuracy', 'models[0].latency' or 'models.0.latency' -> the value; KeyError names what is missing."""
    cur = doc
    for name, index in _PATH_PART.findall(path):
        key: str | int = int(index) if index else (int(name) if name.isdigit() and isinstance(cur, list) else name)
        try:
            cur = cur[key]
        except (KeyError, IndexError, TypeError):
            raise KeyError(f"field '{path}' not found (stopped at '{key}')") from None
    return cur


class JsonSource:
    """A numeric field of a JSON document served over HTTP."""

    def __init__(self, signal: str, url: str, path: str, timeout: float) -> None:
        self.signal, self.url, self.path, self.timeout = signal, url, path, timeout

    def read(self, session: requests.Session, now: datetime) -> Reading:
        doc = fetch_json(session, self.url, self.timeout)
        return self.extract(doc, now)

    def extract(self, doc: Any, now: datetime) -> Reading:
        if isinstance(doc, FetchFailure):
            return Reading.error(self.signal, now, doc.reason)
        try:
            value = json_path(doc, self.path)
        except KeyError as exc:
            return Reading.error(self.signal, now, str(exc.args[0]))
        if value is None:
            return Reading.nodata(self.signal, now, f"'{self.path}' is null")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return Reading.error(self.signal, now, f"'{self.path}' is not a number: {_short(repr(value))}")
        try:
            number = float(value)
        except ValueError:
            return Reading.error(self.signal, now, f"'{self.path}' is not a number: {_short(repr(value))}")
        if math.isnan(number):
            return Reading.nodata(self.signal, now, "NaN")
        return Reading.of(self.signal, now, number)


class FetchFailure:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def fetch_json(session: requests.Session, url: str, timeout: float) -> Any:
    """GET a JSON document; a FetchFailure (never an exception) when it cannot be had."""
    try:
        resp = session.get(url, timeout=timeout, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        return FetchFailure(_short(f"unreachable: {exc}"))
    if resp.status_code != 200:
        return FetchFailure(f"HTTP {resp.status_code} from {url}")
    try:
        return resp.json()
    except ValueError:
        return FetchFailure(f"response from {url} is not JSON")


def read_many(sources: list[MetricSource], session: requests.Session, now: Callable[[], datetime]) -> list[Reading]:
    """Read several sources; JSON sources that share a URL share one fetch."""
    docs: dict[str, Any] = {}
    out = []
    for src in sources:
        if isinstance(src, JsonSource):
            if src.url not in docs:
                docs[src.url] = fetch_json(session, src.url, src.timeout)
            out.append(src.extract(docs[src.url], now()))
        else:
            out.append(src.read(session, now()))
    return out
