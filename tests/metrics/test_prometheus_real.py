"""The Prometheus source against a real Prometheus (Debian's `prometheus`), started on loopback."""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from rollback_bot.metrics import PrometheusSource
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Exporter(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(EXPOSITION)))
        self.end_headers()
        self.wfile.write(EXPOSITION)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if binary is None:
        reason = "the prometheus binary is not installed (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Prometheus tests: {reason}")
        pytest.skip(reason)
    exporter = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    work = tmp_path_factory.mktemp("prometheus")
    config = work / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: copilot\n    static_configs: [{{targets: ['127.0.0.1:{exporter.server_address[1]}']}}]\n"
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(work / "log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    session = loopback_session()
    try:
        deadline = time.monotonic() + 60
        while True:  # ready, and the exporter scraped at least once
            try:
                body = session.get(f"{url}/api/v1/query", params={"query": "copilot_error_ratio"}, timeout=1).json()
                if body["data"]["result"]:
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"prometheus did not come up: {(work / 'log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        exporter.shutdown()


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
    r = PrometheusSource("s", f"http://127.0.0.1:{_free_port()}", "up", timeout=1).read(loopback_session(), NOW)
    assert r.status == "error" and r.detail.startswith("prometheus unreachable")
