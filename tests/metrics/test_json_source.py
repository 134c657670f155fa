"""JSON endpoint source against a real HTTP server on loopback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rollback_bot.metrics import JsonSource, read_many
from tests.helpers import FakeHTTP, loopback_session

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DOC = {
    "quality": {"accuracy": 0.91, "nan": "NaN", "text": "high", "flag": True, "none": None, "inf": "+Inf"},
    "models": [{"latency": 310}, {"latency": "420.5"}],
}


@pytest.mark.parametrize(
    ("path", "status", "value", "detail"),
    [
        ("quality.accuracy", "ok", 0.91, ""),
        ("models[1].latency", "ok", 420.5, ""),  # numeric strings are numbers
        ("models.0.latency", "ok", 310.0, ""),
        ("quality.inf", "ok", float("inf"), ""),
        ("quality.nan", "nodata", None, "NaN"),
        ("quality.none", "nodata", None, "'quality.none' is null"),
        ("quality.text", "error", None, "'quality.text' is not a number: 'high'"),
        ("quality.flag", "error", None, "'quality.flag' is not a number: True"),
        ("quality.missing", "error", None, "field 'quality.missing' not found (stopped at 'missing')"),
        ("models[5].latency", "error", None, "field 'models[5].latency' not found (stopped at '5')"),
    ],
)
def test_field_paths(fake_http: FakeHTTP, path: str, status: str, value: float | None, detail: str) -> None:
    fake_http.routes["/kpi"] = (200, DOC)
    r = JsonSource("s", f"{fake_http.url}/kpi", path, timeout=2).read(loopback_session(), NOW)
    assert (r.status, r.value, r.detail) == (status, value, detail)


def test_http_error_non_json_timeout_and_unreachable(fake_http: FakeHTTP) -> None:
    session = loopback_session()
    fake_http.routes["/500"] = (500, {"error": "boom"})
    fake_http.routes["/html"] = (200, b"<html>not json</html>")
    fake_http.routes["/slow"] = (200, DOC)
    fake_http.delay["/slow"] = 1.0
    cases = {
        "/500": "HTTP 500 from",
        "/html": "is not JSON",
        "/slow": "unreachable: ",  # read timeout
    }
    for path, expected in cases.items():
        r = JsonSource("s", f"{fake_http.url}{path}", "quality.accuracy", timeout=0.2).read(session, NOW)
        assert r.status == "error" and expected in r.detail, (path, r)
    r = JsonSource("s", "http://127.0.0.1:9/kpi", "x", timeout=0.5).read(session, NOW)
    assert r.status == "error" and r.detail.startswith("unreachable")


def test_signals_sharing_a_url_share_one_fetch(fake_http: FakeHTTP) -> None:
    fake_http.routes["/kpi"] = (200, DOC)
    url = f"{fake_http.url}/kpi"
    sources = [JsonSource("a", url, "quality.accuracy", 2), JsonSource("b", url, "models[0].latency", 2)]
    readings = read_many(sources, loopback_session(), lambda: NOW)  # type: ignore[arg-type]
    assert [(r.signal, r.value) for r in readings] == [("a", 0.91), ("b", 310.0)]
    assert len(fake_http.requests) == 1
