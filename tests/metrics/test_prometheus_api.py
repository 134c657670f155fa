"""The Prometheus source against a loopback stand-in of its HTTP API: evaluation time, sample age,
warnings, auth headers and basic auth from ${VAR}, and secrets an endpoint echoes back."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from rollback_bot.metrics import Endpoint, JsonSource, PrometheusSource, Reader
from rollback_bot.metrics.build import build_source
from rollback_bot.playbook import parse_playbook
from rollback_bot.rules.readings import Reading
from tests.helpers import FakeHTTP, Recorded, loopback_session

NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
TOKEN = "s3cr3t-t0ken-value"
PASSWORD = "hunter2-but-longer"


def vector(stamp: float, value: str = "0.25", **extra: object) -> dict[str, object]:
    sample = {"metric": {}, "value": [stamp, value]}
    return {"status": "success", "data": {"resultType": "vector", "result": [sample]}, **extra}


def query_of(rec: Recorded) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(rec.path).query).items()}


def read(source: PrometheusSource) -> Reading:
    return source.read(loopback_session(), NOW)


def test_time_is_sent_and_the_sample_time_is_used(fake_http: FakeHTTP) -> None:
    stamp = (NOW - timedelta(minutes=58, seconds=48)).timestamp()
    fake_http.routes["/api/v1/query"] = lambda rec: (200, vector(stamp))
    fresh = PrometheusSource("s", fake_http.url, "up", 2, max_age=timedelta(hours=1)).read(loopback_session(), NOW)
    stale = PrometheusSource("s", fake_http.url, "up", 2, max_age=timedelta(minutes=5)).read(loopback_session(), NOW)
    assert (fresh.status, fresh.value) == ("ok", 0.25)
    assert (stale.status, stale.value, stale.detail) == ("nodata", None, "stale: sample stamped 08:01:12, 58m48s old")
    assert stale.is_stale
    assert query_of(fake_http.requests[0]) == {"query": "up", "time": f"{NOW.timestamp():.3f}"}


@pytest.mark.parametrize(
    ("stamp", "detail"),
    [
        (
            (NOW + timedelta(hours=1)).timestamp(),
            "sample stamped 1h in the future (2026-01-01 10:00:00): clocks disagree",
        ),
        (1e300, "sample timestamp 1e+300 is not a time"),
        (-1e15, "sample timestamp -1000000000000000.0 is not a time"),
    ],
)
def test_a_sample_from_the_future_or_no_time_at_all_is_a_failed_read(
    fake_http: FakeHTTP, stamp: float, detail: str
) -> None:
    fake_http.routes["/api/v1/query"] = lambda rec: (200, vector(stamp))
    r = PrometheusSource("s", fake_http.url, "up", 2, max_age=timedelta(minutes=5)).read(loopback_session(), NOW)
    assert (r.status, r.detail) == ("error", detail)


def test_warnings_and_infos_are_kept_on_the_reading(fake_http: FakeHTTP) -> None:
    body = vector(NOW.timestamp(), warnings=["partial response: store-2 down"], infos=["metric might not be a counter"])
    fake_http.routes["/api/v1/query"] = (200, body)
    r = PrometheusSource("s", fake_http.url, "up", 2).read(loopback_session(), NOW)
    assert (r.status, r.value, r.usable) == ("ok", 0.25, True)
    assert r.detail == (
        "prometheus warning: partial response: store-2 down; prometheus info: metric might not be a counter"
    )


@pytest.mark.parametrize(
    ("value", "status", "detail"),
    [("1_000", "error", "cannot read sample"), ("NaN", "nodata", "NaN"), ("+Inf", "ok", "")],
)
def test_sample_values_are_read_strictly(fake_http: FakeHTTP, value: str, status: str, detail: str) -> None:
    fake_http.routes["/api/v1/query"] = (200, vector(NOW.timestamp(), value))
    r = PrometheusSource("s", fake_http.url, "up", 2).read(loopback_session(), NOW)
    assert r.status == status and r.detail.startswith(detail)


def test_headers_and_basic_auth_from_the_environment_reach_the_server(
    fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROM_TOKEN", TOKEN)
    monkeypatch.setenv("PROM_PASSWORD", PASSWORD)
    fake_http.routes["/api/v1/query"] = (200, vector(NOW.timestamp()))
    fake_http.routes["/prom/api/v1/query"] = (200, vector(NOW.timestamp()))
    bearer = Endpoint(fake_http.url, headers=(("Authorization", "Bearer ${PROM_TOKEN}"), ("X-Scope-OrgID", "team")))
    basic = Endpoint(f"{fake_http.url}/prom", basic_auth=("12345", "${PROM_PASSWORD}"))
    assert read(PrometheusSource("a", bearer, "up", 2)).value == 0.25
    assert read(PrometheusSource("b", basic, "up", 2)).value == 0.25
    first, second = fake_http.requests
    assert first.headers["Authorization"] == f"Bearer {TOKEN}" and first.headers["X-Scope-OrgID"] == "team"
    assert second.headers["Authorization"] == "Basic " + base64.b64encode(f"12345:{PASSWORD}".encode()).decode()


def test_a_missing_variable_is_a_failed_read_naming_it(fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROM_TOKEN", raising=False)
    source = PrometheusSource(
        "s", Endpoint(fake_http.url, headers=(("Authorization", "Bearer ${PROM_TOKEN}"),)), "up", 2
    )
    r = source.read(loopback_session(), NOW)
    assert (r.status, r.detail) == (
        "error",
        "prometheus environment variable PROM_TOKEN is not set; it is needed to connect to this source",
    )
    assert fake_http.requests == []


def test_secrets_echoed_back_are_redacted_everywhere(
    fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PROM_TOKEN", TOKEN)
    monkeypatch.setenv("PROM_PASSWORD", PASSWORD)

    def echo(rec: Recorded) -> tuple[int, object]:
        said = rec.headers.get("Authorization", "")
        return 422, {"status": "error", "errorType": "bad_data", "error": f"no tenant for {said}"}

    fake_http.routes["/api/v1/query"] = echo
    fake_http.routes["/html/api/v1/query"] = lambda rec: (401, f"<b>{rec.headers['Authorization']}</b>".encode())
    bearer = Endpoint(fake_http.url, headers=(("Authorization", "Bearer ${PROM_TOKEN}"),))
    basic = Endpoint(f"{fake_http.url}/html", basic_auth=("bot", "${PROM_PASSWORD}"))
    caplog.set_level(logging.DEBUG)
    reader = Reader(loopback_session())
    try:
        a, b = reader.read_all(
            [PrometheusSource("a", bearer, "up", 2), PrometheusSource("b", basic, "up", 2)], lambda: NOW
        )
    finally:
        reader.close()
    assert a.detail == "prometheus bad_data: no tenant for Bearer [redacted]"
    assert b.detail.startswith("prometheus HTTP 401, answer is not JSON") and "Basic [redacted]" in b.detail
    assert b.detail.endswith("check headers / basic_auth under sources.prometheus")
    token_b64 = base64.b64encode(f"bot:{PASSWORD}".encode()).decode()
    for secret in (TOKEN, PASSWORD, token_b64):
        assert secret not in a.detail + b.detail + caplog.text


def test_a_secret_echoed_in_another_letter_case_is_redacted(
    fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error page that lower- or upper-cases the header it echoes must not leak the token."""
    monkeypatch.setenv("PROM_TOKEN", TOKEN)

    def echo(rec: Recorded) -> tuple[int, bytes]:
        said = rec.headers.get("Authorization", "")
        return 401, f"denied: {said.lower()} / {said.upper()}".encode()

    fake_http.routes["/api/v1/query"] = echo
    bearer = Endpoint(fake_http.url, headers=(("Authorization", "Bearer ${PROM_TOKEN}"),))
    r = PrometheusSource("a", bearer, "up", 2).read(loopback_session(), NOW)
    assert "bearer [redacted] / BEARER [redacted]" in r.detail
    assert TOKEN.lower() not in r.detail.lower()


PLAYBOOK = """
name: auth
service: s
channel: "#c"
roles: {{ic: {{users: [U1]}}}}
acknowledge: {{requires: [ic]}}
resolve: {{requires: [ic]}}
hold: {{requires: [ic]}}
sources:
  prometheus:
    url: {url}/prom
    headers: {{X-Scope-OrgID: "${{PROM_TENANT}}"}}
    basic_auth: {{username: "1234", password: "${{PROM_PASSWORD}}"}}
signals:
  errors: {{prometheus: up, every: 30s, timeout: 2s}}
  accuracy:
    http: {url}/kpi
    json: quality.accuracy
    timeout: 2s
    numeric_strings: true
    headers: {{Authorization: "Bearer ${{KPI_TOKEN}}"}}
    tls: {{ca_file: certs/ca.pem}}
triggers:
  t: {{when: errors > 1}}
ladder:
  - {{name: one, window: 0h-1h}}
"""


def test_build_source_reads_connection_settings_from_the_playbook(
    fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROM_TENANT", "tenant-1")
    monkeypatch.setenv("PROM_PASSWORD", PASSWORD)
    monkeypatch.setenv("KPI_TOKEN", TOKEN)
    pb = parse_playbook(PLAYBOOK.format(url=fake_http.url), str(tmp_path / "auth.yaml")).playbook
    errors, accuracy = (build_source(n, pb.signals[n], pb) for n in ("errors", "accuracy"))
    assert isinstance(errors, PrometheusSource) and isinstance(accuracy, JsonSource)
    assert errors.max_age == timedelta(seconds=62)  # 2 x every + timeout
    assert errors.endpoint == Endpoint(
        f"{fake_http.url}/prom/api/v1/query", (("X-Scope-OrgID", "${PROM_TENANT}"),), ("1234", "${PROM_PASSWORD}")
    )
    assert accuracy.numeric_strings and accuracy.endpoint.ca_file == str(tmp_path / "certs" / "ca.pem")
    fake_http.routes["/prom/api/v1/query"] = (200, vector(NOW.timestamp(), "3"))
    assert errors.read(loopback_session(), NOW).value == 3.0
    assert fake_http.requests[0].headers["X-Scope-OrgID"] == "tenant-1"
    missing_ca = accuracy.read(loopback_session(), NOW)
    assert missing_ca.detail == f"tls.ca_file {tmp_path / 'certs' / 'ca.pem'} does not exist"


@pytest.mark.parametrize("pad", [100, 115, 280, 290])
def test_a_secret_is_redacted_before_any_cut(fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch, pad: int) -> None:
    """A secret echoed where a detail is cut short must not leave its first characters behind."""
    monkeypatch.setenv("KPI_TOKEN", TOKEN)
    fake_http.routes["/kpi"] = lambda rec: (200, ("x" * pad + rec.headers["Authorization"] + "y" * 400).encode())
    source = JsonSource("s", Endpoint(f"{fake_http.url}/kpi", (("Authorization", "Bearer ${KPI_TOKEN}"),)), "v", 2)
    r = source.read(loopback_session(), NOW)
    assert r.detail.startswith("answer is not JSON") and len(r.detail) <= 300
    assert TOKEN[:4] not in r.detail
