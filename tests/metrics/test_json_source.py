"""JSON endpoint source against a real HTTP server on loopback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rollback_bot.metrics import Endpoint, JsonSource, Reader
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
        ("models.0.latency", "ok", 310.0, ""),
        ("quality.none", "nodata", None, "'quality.none' is null"),
        ("models[1].latency", "error", None, """'models[1].latency' is a string ("420.5"), not a number; set"""),
        ("quality.nan", "error", None, """'quality.nan' is a string ("NaN"), not a number; set numeric_strings"""),
        ("quality.text", "error", None, ''''quality.text' is not a number: "high"'''),
        ("quality.flag", "error", None, "'quality.flag' is a boolean (true), not a number"),
        ("quality", "error", None, "'quality' is an object, not a number"),
        ("models", "error", None, "'models' is an array, not a number"),
        ("quality.missing", "error", None, "field 'quality.missing' not found (stopped at 'missing')"),
        ("models[5].latency", "error", None, "field 'models[5].latency' not found (stopped at '5')"),
    ],
)
def test_field_paths(fake_http: FakeHTTP, path: str, status: str, value: float | None, detail: str) -> None:
    fake_http.routes["/kpi"] = (200, DOC)
    r = JsonSource("s", f"{fake_http.url}/kpi", path, timeout=2).read(loopback_session(), NOW)
    assert (r.status, r.value) == (status, value)
    assert r.detail.startswith(detail), r.detail


@pytest.mark.parametrize(
    ("path", "status", "value", "detail"),
    [
        ("models[1].latency", "ok", 420.5, ""),
        ("quality.inf", "ok", float("inf"), ""),
        ("quality.nan", "nodata", None, "NaN"),
        ("quality.text", "error", None, ''''quality.text' is not a number: "high"'''),
    ],
)
def test_numeric_strings_when_asked(
    fake_http: FakeHTTP, path: str, status: str, value: float | None, detail: str
) -> None:
    fake_http.routes["/kpi"] = (200, DOC)
    r = JsonSource("s", f"{fake_http.url}/kpi", path, 2, numeric_strings=True).read(loopback_session(), NOW)
    assert (r.status, r.value, r.detail) == (status, value, detail)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (5, "answer is a number, not an object or array; 'a.b' is not in it"),
        ("text", "answer is a string, not an object or array; 'a.b' is not in it"),
        (None, "answer is null, not an object or array; 'a.b' is not in it"),
        ({"a": {"b": float("nan")}}, "NaN"),
        ({"a": {"b": 10**400}}, "'a.b' is a number too large to read"),
    ],
)
def test_documents_that_hold_no_number(fake_http: FakeHTTP, body: object, detail: str) -> None:
    fake_http.routes["/doc"] = (200, body)
    r = JsonSource("s", f"{fake_http.url}/doc", "a.b", timeout=2).read(loopback_session(), NOW)
    assert r.detail == detail and not r.usable


def test_http_error_non_json_timeout_and_unreachable(fake_http: FakeHTTP) -> None:
    session = loopback_session()
    fake_http.routes["/500"] = (500, {"error": "boom"})
    fake_http.routes["/html"] = (200, b"<html>not json</html>")
    fake_http.routes["/slow"] = (200, DOC)
    fake_http.delay["/slow"] = 1.0
    cases = {
        "/500": "HTTP 500 from",
        "/html": "answer is not JSON (Expecting value at line 1 column 1): '<html>not json</html>'",
        "/slow": "no answer within 0.2s",
    }
    for path, expected in cases.items():
        r = JsonSource("s", f"{fake_http.url}{path}", "quality.accuracy", timeout=0.2).read(session, NOW)
        assert r.status == "error" and expected in r.detail, (path, r)
    r = JsonSource("s", "http://127.0.0.1:9/kpi", "x", timeout=0.5).read(session, NOW)
    assert (r.status, r.detail) == ("error", "unreachable: Connection refused")


def test_signals_sharing_a_url_and_settings_share_one_fetch(fake_http: FakeHTTP) -> None:
    fake_http.routes["/kpi"] = (200, DOC)
    url = f"{fake_http.url}/kpi"
    tenant = Endpoint(url, headers=(("X-Scope-OrgID", "team-a"),))
    sources = [
        JsonSource("a", url, "quality.accuracy", 2),
        JsonSource("b", url, "models[0].latency", 2),
        JsonSource("c", tenant, "quality.accuracy", 2),  # other settings: a fetch of its own
    ]
    reader = Reader(loopback_session())
    try:
        readings = reader.read_all(sources, lambda: NOW)
    finally:
        reader.close()
    assert [(r.signal, r.value) for r in readings] == [("a", 0.91), ("b", 310.0), ("c", 0.91)]
    assert sorted(r.headers.get("X-Scope-OrgID", "") for r in fake_http.requests) == ["", "team-a"]
