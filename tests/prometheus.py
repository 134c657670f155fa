"""A real Prometheus (Debian's package) on loopback for tests: scraping an exposition we serve, or holding a
history backfilled with promtool. CI must run these tests; elsewhere they skip with the reason."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from rollback_bot.httpio import serve_in_background
from tests.helpers import loopback_session


def binary(name: str = "prometheus", package: str = "prometheus") -> str:
    """The binary's path; skips the test (fails it under CI) when it is not installed."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if found is None:
        reason = f"the {name} binary is not installed (apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the tests against the real {name}: {reason}")
        pytest.skip(reason)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def exporter(exposition: bytes) -> Iterator[str]:
    """An HTTP server answering `exposition` (Prometheus text format) on every GET: its host:port."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(exposition)))
            self.end_headers()
            self.wfile.write(exposition)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serve_in_background(server)
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def scrape_config(target: str) -> str:
    return (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: copilot\n    static_configs: [{{targets: ['{target}']}}]\n"
    )


@contextmanager
def running(work: Path, config: str, ready: dict[str, str]) -> Iterator[str]:
    """Prometheus with `config` and its data in `work/data`, until the query `ready` has a result: its URL."""
    (work / "prometheus.yml").write_text(config)
    port = free_port()
    log = work / "log"
    proc = subprocess.Popen(
        [
            binary(),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    url, session = f"http://127.0.0.1:{port}", loopback_session()
    try:
        deadline = time.monotonic() + 60
        while True:  # ready, with data to answer `ready`
            try:
                body = session.get(f"{url}/api/v1/query", params=ready, timeout=1).json()
                if body["data"]["result"]:
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"prometheus did not come up: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        session.close()
