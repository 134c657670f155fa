"""The plain WSGI pieces both HTTP faces use (Slack's events, Alertmanager's webhook): a refusal with its
status, reading a body within a limit, and an answer with its status line."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

StartResponse = Callable[..., Any]
POLL = 0.05  # s between serve_forever's looks at shutdown(): its default, 0.5 s, is what every stop waited


def serve_in_background(server: socketserver.BaseServer, name: str = "http") -> threading.Thread:
    """Serve on a daemon thread; `server.shutdown()` then returns within POLL seconds."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL}, name=name, daemon=True)
    thread.start()
    return thread


class Rejected(Exception):
    """A request refused before any listener saw it: the HTTP status and why, in one line."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


def read_body(environ: dict[str, Any], *, limit: int, too_large: str) -> bytes:
    """The body, at most `limit` bytes (413, with `too_large` said after the size); no Content-Length: empty."""
    length_text = str(environ.get("CONTENT_LENGTH") or "0")
    if not length_text.isdigit():
        raise Rejected(400, "Content-Length is not a number")
    length = int(length_text)
    if length > limit:
        raise Rejected(413, f"body of {length} bytes{too_large}")
    stream = environ.get("wsgi.input")
    return bytes(stream.read(length)) if stream is not None and length else b""


def answer(
    start_response: StartResponse,
    status: int,
    data: bytes,
    content_type: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    start_response(
        status_line(status), [("Content-Type", content_type), ("Content-Length", str(len(data))), *(extra or [])]
    )
    return [data]
