"""A loopback HTTP server of misbehaving metric endpoints, for tests and bench/hostile_source.py.

Every route stops by itself (after `hold` seconds at most, or when the client goes away), and the
server counts the body bytes each route managed to send, so a test can tell that a client stopped early.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from rollback_bot.httpio import serve_in_background

HEALTHY = {"value": 1.5, "flag": True, "ratio": "0.25", "nested": {"p95": 310}}
MB = 1024 * 1024


@functools.cache
def gzip_bomb(size: int = 256 * MB) -> bytes:
    """`size` zero bytes gzipped (about 250 KB on the wire for 256 MiB)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MB)
    return b"".join(comp.compress(block) for _ in range(size // MB)) + comp.flush()


class HostileServer:
    """Routes: /ok /deep /trickle /huge /huge-declared /redirect-loop /latin1 /lying-length /gzip-bomb /silent
    /slow-headers /chunk-trickle."""

    def __init__(self, hold: float = 8.0, huge: int = 300 * MB) -> None:
        self.hold, self.huge = hold, huge
        self.sent: dict[str, int] = defaultdict(int)
        self.asked: dict[str, int] = defaultdict(int)
        self.finished: set[str] = set()
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        serve_in_background(self.server, "hostile")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_finished(self, route: str, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while route not in self.finished and time.monotonic() < end:
            time.sleep(0.05)
        return route in self.finished

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        box = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def head(self, status: int = 200, length: int | None = None, **extra: Any) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if length is not None:
                    self.send_header("Content-Length", str(length))
                for k, v in extra.items():
                    self.send_header(k.replace("_", "-"), v)
                if length is None:
                    self.send_header("Connection", "close")
                self.end_headers()

            def body(self, route: str, data: bytes) -> bool:
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:
                    return False
                box.sent[route] += len(data)
                return True

            def do_GET(self) -> None:
                route = urlsplit(self.path).path
                box.asked[route] += 1
                try:
                    ROUTES.get(route, not_found)(self, route)
                finally:
                    box.finished.add(route)

        def ok(h: Handler, route: str) -> None:
            data = json.dumps(HEALTHY).encode()
            h.head(length=len(data))
            h.body(route, data)

        def fixed(data: bytes, **extra: Any) -> Callable[[Handler, str], None]:
            def answer(h: Handler, route: str) -> None:
                h.head(length=len(data), **extra)
                h.body(route, data)

            return answer

        def trickle(h: Handler, route: str) -> None:
            h.head(length=1000)
            end = time.monotonic() + box.hold
            while time.monotonic() < end and not box.stopping.wait(0.4) and h.body(route, b" "):
                pass

        def slow_headers(h: Handler, route: str) -> None:
            h.send_response(200)
            h.flush_headers()
            end = time.monotonic() + box.hold
            while time.monotonic() < end and not box.stopping.wait(0.4) and h.body(route, b"X"):
                pass
            h.close_connection = True

        def huge(h: Handler, route: str, declared: bool = False) -> None:
            h.head(length=box.huge if declared else None)
            chunk = b'{"value": 1, "pad": "' + b"x" * (64 * 1024 - 21)
            while box.sent[route] < box.huge and not box.stopping.is_set() and h.body(route, chunk):
                pass
            h.close_connection = True

        def redirect_loop(h: Handler, route: str) -> None:
            h.head(302, length=0, Location="/redirect-loop")

        def lying_length(h: Handler, route: str) -> None:
            h.head(length=1000)
            h.body(route, b'{"value": 1.5}')
            h.close_connection = True

        def bomb(h: Handler, route: str) -> None:
            data = gzip_bomb()
            h.head(length=len(data), Content_Encoding="gzip")
            for i in range(0, len(data), 64 * 1024):
                if not h.body(route, data[i : i + 64 * 1024]):
                    break

        def chunk_trickle(h: Handler, route: str) -> None:
            """A chunked answer whose first chunk-size line never ends, with Connection: close."""
            h.send_response(200)
            h.send_header("Transfer-Encoding", "chunked")
            h.send_header("Connection", "close")
            h.end_headers()
            end = time.monotonic() + box.hold
            while time.monotonic() < end and not box.stopping.wait(0.1) and h.body(route, b"0"):
                pass
            h.close_connection = True

        def silent(h: Handler, route: str) -> None:
            box.stopping.wait(box.hold)
            h.close_connection = True

        def not_found(h: Handler, route: str) -> None:
            h.head(404, length=2)
            h.body(route, b"{}")

        ROUTES: dict[str, Callable[[Handler, str], None]] = {
            "/ok": ok,
            "/deep": fixed(b"[" * 100_000),
            "/trickle": trickle,
            "/huge": huge,
            "/huge-declared": functools.partial(huge, declared=True),
            "/redirect-loop": redirect_loop,
            "/latin1": fixed(b'{"value": "caf\xe9"}'),
            "/lying-length": lying_length,
            "/gzip-bomb": bomb,
            "/silent": silent,
            "/slow-headers": slow_headers,
            "/chunk-trickle": chunk_trickle,
        }
        return Handler
