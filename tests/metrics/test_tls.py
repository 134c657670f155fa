"""TLS against a real HTTPS server on loopback whose self-signed certificate the `openssl` CLI makes."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rollback_bot.httpio import serve_in_background
from rollback_bot.metrics import Endpoint, JsonSource
from tests.helpers import loopback_session

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        data = json.dumps({"value": 2.5}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(5)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):  # a client that does not trust us hangs up during the handshake
            return
        self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]


@pytest.fixture
def https(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(URL, CA file) of an HTTPS server on 127.0.0.1 with a fresh self-signed certificate."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl CLI is not installed")
    cert, key = tmp_path / "ca.pem", tmp_path / "key.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject, *files],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _TlsServer(context)
    serve_in_background(server)
    yield f"https://127.0.0.1:{server.server_address[1]}/kpi", cert
    server.shutdown()
    server.server_close()


def test_an_untrusted_certificate_is_a_failed_read_that_says_what_to_set(https: tuple[str, Path]) -> None:
    url, _ = https
    r = JsonSource("s", url, "value", 2).read(loopback_session(), NOW)
    assert r.status == "error"
    assert r.detail.startswith("TLS certificate not trusted: self-signed certificate; set tls.ca_file to its CA")


def test_ca_file_trusts_the_server(https: tuple[str, Path]) -> None:
    url, ca = https
    r = JsonSource("s", Endpoint(url, ca_file=str(ca)), "value", 2).read(loopback_session(), NOW)
    assert (r.status, r.value) == ("ok", 2.5)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_false_reads_without_checking(https: tuple[str, Path]) -> None:
    url, _ = https
    r = JsonSource("s", Endpoint(url, verify=False), "value", 2).read(loopback_session(), NOW)
    assert (r.status, r.value) == ("ok", 2.5)


def test_a_plain_http_client_on_the_tls_port_fails_clearly(https: tuple[str, Path]) -> None:
    url, _ = https
    r = JsonSource("s", url.replace("https://", "http://"), "value", 1).read(loopback_session(), NOW)
    assert (r.status, r.detail) == ("error", "unreachable: Connection reset by peer")
