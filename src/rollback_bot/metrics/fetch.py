"""One GET of a JSON document within a total deadline and a size cap; every failure becomes a reason.

The deadline covers connecting, redirects and the whole body: the body is streamed, the time left is
checked between chunks and each socket wait is bounded by it, so a server trickling bytes cannot hold
a read open. The size cap counts the decoded body, so a small gzip bomb is stopped as early as a large
plain answer.
"""

from __future__ import annotations

import json
import re
import socket
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from rollback_bot.metrics.deadline import Watch, watching
from rollback_bot.metrics.endpoint import ConnectionProblem, Endpoint, Resolved

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """What one fetch got: a status and a JSON document, or the reason there is none.

    `failure` set: nothing usable came back (unreachable, timeout, too large, not JSON...);
    `asked_at` is the evaluation time the fetch was made for."""

    asked_at: datetime
    status: int = 0
    doc: Any = None
    failure: str = ""
    excerpt: str = ""  # a body that is not JSON; shown cut short, and only after redaction


class FetchError(Exception):
    """A fetch that produced no usable body; the message is the reason."""


def size_text(n: int) -> str:
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def get_json(
    session: requests.Session,
    endpoint: Endpoint,
    params: Mapping[str, str],
    timeout: float,
    max_bytes: int,
    asked_at: datetime,
    watch: Watch | None = None,
) -> Answer:
    """GET and parse; never raises (any exception at all becomes `Answer.failure`). With `watch`, the
    connections opened are registered with it, so the caller can cut them off at the deadline."""
    try:
        with watching(watch):
            status, body = fetch(session, endpoint.resolve(), params, timeout, max_bytes)
    except (FetchError, ConnectionProblem) as exc:
        return Answer(asked_at, failure=str(exc))
    except Exception as exc:
        return Answer(asked_at, failure=describe(exc, timeout))
    return parse(body, status, asked_at)


def parse(body: bytes, status: int, asked_at: datetime) -> Answer:
    """The JSON document in `body`, or a failure saying why it is not one."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = f"byte 0x{body[exc.start]:02x} at {exc.start}"
        return Answer(asked_at, status, failure=f"answer is not UTF-8 text ({bad})")
    try:
        return Answer(asked_at, status, json.loads(text))
    except RecursionError:
        return Answer(asked_at, status, failure="answer is JSON nested too deeply to read")
    except ValueError as exc:
        where = f" ({exc.msg} at line {exc.lineno} column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        return Answer(asked_at, status, failure=f"answer is not JSON{where}", excerpt=text)
    except MemoryError:
        return Answer(asked_at, status, failure="answer too large to parse")


def fetch(
    session: requests.Session, target: Resolved, params: Mapping[str, str], timeout: float, max_bytes: int
) -> tuple[int, bytes]:
    """(status, decoded body) of a GET that follows at most MAX_REDIRECTS redirects, all within `timeout`."""
    deadline = time.monotonic() + timeout
    url, headers, auth, query = target.url, dict(target.headers), target.auth, dict(params)
    headers.setdefault("Accept", "application/json")
    headers["Accept-Encoding"] = "gzip, deflate"
    for _ in range(MAX_REDIRECTS + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError(f"no answer within {timeout:g}s")
        resp = session.get(
            url,
            params=query,
            headers=headers,
            auth=auth,
            verify=target.verify,
            timeout=(left, left),
            stream=True,
            allow_redirects=False,
        )
        try:
            if not resp.is_redirect:
                return resp.status_code, read_body(resp, deadline, timeout, max_bytes)
            nxt = urljoin(resp.url, resp.headers["location"])
        finally:
            resp.close()
        if _origin(nxt) != _origin(url):  # credentials never follow a redirect to another host
            headers = {k: v for k, v in headers.items() if k in ("Accept", "Accept-Encoding")}
            auth = None
        url, query = nxt, {}
    raise FetchError(f"more than {MAX_REDIRECTS} redirects (last to {_short_url(url)})")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _short_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def read_body(resp: requests.Response, deadline: float, timeout: float, max_bytes: int) -> bytes:
    """The decoded body, read in chunks; FetchError past the deadline or the size cap."""
    too_large = f"answer larger than {size_text(max_bytes)} (MAX_RESPONSE_BYTES)"
    length = resp.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise FetchError(f"{too_large}: it says {length} bytes")
    decoder = _decoder(resp.headers.get("Content-Encoding", ""))
    raw = resp.raw
    read = getattr(raw, "read1", raw.read)  # read1 (urllib3 >= 2.3) returns what one socket read got
    body, received = bytearray(), 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError(f"answer not complete within {timeout:g}s ({received} bytes received)")
        _bound_socket_wait(resp, left)
        chunk = read(_CHUNK, decode_content=False)
        if not chunk:
            break
        received += len(chunk)
        data = decoder.decompress(chunk, max_bytes - len(body) + 1) if decoder else chunk
        body += data
        if len(body) > max_bytes or received > max_bytes:
            raise FetchError(too_large)
    if decoder is not None:
        body += decoder.flush()
        if not decoder.eof:
            raise FetchError("compressed answer is cut short")
        if len(body) > max_bytes:
            raise FetchError(too_large)
    return bytes(body)


def _decoder(encoding: str) -> Any:
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return None
    if enc in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if enc == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise FetchError(f"answer uses Content-Encoding '{encoding[:40]}'; only gzip and deflate are read")


def _bound_socket_wait(resp: requests.Response, seconds: float) -> None:
    """Each socket read waits at most the time left (requests only sets one read timeout per request)."""
    sock = getattr(getattr(resp.raw, "_connection", None), "sock", None)
    if isinstance(sock, socket.socket):
        sock.settimeout(max(seconds, 0.001))


_VERIFY = re.compile(r"certificate verify failed: ([^(')\"]+)")
_INCOMPLETE = re.compile(r"IncompleteRead\((\d+ bytes read, \d+ more expected)\)")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)|Error\(-?\d+, '([^']+)'\)")


def describe(exc: BaseException, timeout: float) -> str:
    """A reason for an exception raised while fetching (its text may hold secrets: redact, then cut)."""
    text = str(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"no answer within {timeout:g}s (connecting)"
    if isinstance(exc, requests.exceptions.SSLError):
        m = _VERIFY.search(text)
        if m:
            why = m.group(1).strip()
            return f"TLS certificate not trusted: {why}; set tls.ca_file to its CA (or tls.verify: false)"
        return f"TLS failed: {_flat(text)}"
    if isinstance(exc, requests.exceptions.ReadTimeout | socket.timeout) or "timed out" in text:
        return f"no answer within {timeout:g}s"
    if isinstance(exc, requests.exceptions.ConnectionError):
        m = _ERRNO.search(text)
        return f"unreachable: {(m.group(1) or m.group(2)).strip() if m else _flat(text)}"
    if "IncompleteRead" in text or "ProtocolError" in type(exc).__name__:
        m = _INCOMPLETE.search(text)
        return f"answer cut short: {m.group(1) if m else _flat(text)}"
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return f"bad URL: {_flat(text)}"
    if isinstance(exc, MemoryError):
        return "answer too large for memory"
    return f"{type(exc).__name__}: {_flat(text)}"


def _flat(text: str) -> str:
    return " ".join(text.split())
