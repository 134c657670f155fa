"""Test helpers: a loopback HTTP server whose answers tests set and whose requests tests read."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

from rollback_bot.httpio import serve_in_background


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]  # status, JSON body (or bytes), extra headers
Answer = Reply | Callable[["Recorded"], Reply]


@dataclass
class FakeHTTP:
    """Routes map a path to (status, JSON body[, headers]) or to a function of the request; raw bytes pass
    as is."""

    routes: dict[str, Answer] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _handle(self) -> None:
                path = urlsplit(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                rec = Recorded(self.command, self.path, dict(self.headers), body)
                fake.requests.append(rec)
                if path in fake.delay:
                    time.sleep(fake.delay[path])
                answer = fake.routes.get(path, (404, {"error": "no route"}))
                reply = answer(rec) if callable(answer) else answer
                status, payload = reply[0], reply[1]
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                headers = {"Content-Type": "application/json", **(reply[2] if len(reply) > 2 else {})}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        serve_in_background(self.server)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def posts(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method != "GET" and urlsplit(r.path).path == path]


def loopback_session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never route loopback traffic through a proxy from the environment
    return s
