"""The Prometheus source against a real Prometheus (Debian's `prometheus`), started on loopback."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from rollback_bot.metrics import PrometheusSource
from tests import prometheus as prom
from tests.helpers import loopback_session

pytestmark = pytest.mark.prometheus
NOW = datetime(2026, 1, 1, tzinfo=UTC)
EXPOSITION = b"""# TYPE copilot_error_ratio gauge
copilot_error_ratio 0.25
# TYPE copilot_zero gauge
copilot_zero 0
# TYPE copilot_latency_ms gauge
copilot_latency_ms{pod="a"} 310
copilot_latency_ms{pod="b"} 420
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prom.binary()
    with prom.exporter(EXPOSITION) as target:
        work = tmp_path_factory.mktemp("prometheus")
        with prom.running(work, prom.scrape_config(target), {"query": "copilot_error_ratio"}) as url:
            yield url


@pytest.mark.parametrize(
    ("query", "status", "value", "detail"),
    [
        ("copilot_error_ratio", "ok", 0.25, ""),  # instant vector, one series
        ("scalar(copilot_error_ratio)", "ok", 0.25, ""),  # scalar result
        ("sum(copilot_latency_ms)", "ok", 730.0, ""),
        ("copilot_error_ratio / 0", "ok", math.inf, ""),  # "+Inf"
        ("-copilot_error_ratio / 0", "ok", -math.inf, ""),  # "-Inf"
        ("copilot_zero / 0", "nodata", None, "NaN"),  # "NaN" is no data, never healthy
        ("NaN", "nodata", None, "NaN"),  # scalar "NaN"
        ("copilot_no_such_metric", "nodata", None, "empty result"),  # empty is no data, never 0
        ("sum(", "error", None, "prometheus bad_data"),  # an error answer is a source error
        ("copilot_latency_ms", "error", None, "query returned 2 series; aggregate it to one"),
        ("copilot_error_ratio[5m]", "error", None, "result type 'matrix' is not supported"),
    ],
)
def test_query_results(prometheus: str, query: str, status: str, value: float | None, detail: str) -> None:
    source = PrometheusSource("s", prometheus, query, timeout=5, max_age=timedelta(seconds=65))
    r = source.read(loopback_session(), datetime.now(UTC))  # Prometheus evaluates at the time we send
    assert r.status == status, r
    assert r.value == value
    assert detail in r.detail
    assert r.usable is (status == "ok")


def test_prometheus_evaluates_at_the_time_sent(prometheus: str) -> None:
    asked = datetime.now(UTC) - timedelta(seconds=30)
    r = PrometheusSource("s", prometheus, "time()", timeout=5).read(loopback_session(), asked)
    assert r.value == round(asked.timestamp(), 3)
    before_any_data = PrometheusSource("s", prometheus, "copilot_error_ratio", timeout=5).read(loopback_session(), NOW)
    assert (before_any_data.status, before_any_data.detail) == ("nodata", "empty result")


def test_unreachable_prometheus_is_a_source_error() -> None:
    r = PrometheusSource("s", f"http://127.0.0.1:{prom.free_port()}", "up", timeout=1).read(loopback_session(), NOW)
    assert r.status == "error" and r.detail.startswith("prometheus unreachable")
