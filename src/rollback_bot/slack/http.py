"""The HTTP face: POST /slack/events (Bolt), GET /healthz, GET /metrics. A WSGI app, so gunicorn can
serve it in production; `serve()` runs it on a threaded development server."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import App, BoltRequest
from slack_bolt.context import BoltContext
from slack_bolt.request.internals import build_context
from sqlalchemy import text

from rollback_bot.httpio import StartResponse, answer, read_body, status_line
from rollback_bot.slack import inbound
from rollback_bot.store import inbound as store_inbound
from rollback_bot.store.database import Store
from rollback_bot.telemetry import REQUESTS, exposition

WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
log = logging.getLogger(__name__)


class SlackEndpoint:
    """POST /slack/events. The signature and timestamp are checked on the raw body before anything is parsed;
    a request that fails any check gets a 4xx and one log line, never a listener call or a 5xx. A signature
    seen before (a replay within Slack's 5-minute window) is answered and ignored.

    Bolt's own body parser is bypassed: Bolt 1.30 reads any form body containing the word 'payload' as an
    interaction, so `/rollback note the payload service is down` would be dropped."""

    def __init__(self, app: App, store: Store, signing_secret: str | None, now: Callable[[], float] = time.time):
        self.app, self.store, self.secret, self.now = app, store, signing_secret, now
        self._handled = 0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = {
            key[5:].lower().replace("_", "-") if key.startswith("HTTP_") else key.lower().replace("_", "-"): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")
        }
        try:
            raw = _read_body(environ)
            if not self.secret:
                raise inbound.Rejected(401, "SLACK_SIGNING_SECRET is not set, so no request can be verified")
            signature, ts = inbound.verify(self.secret, headers, raw, self.now)
            body = inbound.parse(raw, headers.get("content-type", ""))
            request = _bolt_request(raw, body, environ.get("QUERY_STRING", ""), headers)
        except inbound.Rejected as exc:
            log.warning("refused a request to /slack/events with %s: %s", exc.status, exc.reason)
            return answer(start_response, exc.status, exc.reason.encode(), "text/plain; charset=utf-8")
        try:
            replayed = False
            if body.get("type") != "block_actions":  # a click's replay conflicts in the inbox (slack/clicks.py)
                with self.store.engine.connect() as conn:
                    replayed = store_inbound.seen(conn, signature=signature)
        except Exception as exc:  # the database is unreachable: nothing can be recorded, so say so
            log.error("cannot take a Slack request: the database is unreachable (%s)", type(exc).__name__)
            if "command" in body:  # a command's answer is shown to the person; a click's is not, but a 503 is
                text = ":warning: I cannot reach my database right now, so nothing was recorded. Try again shortly."
                data = json.dumps({"response_type": "ephemeral", "text": text}).encode()
                return answer(start_response, 200, data, "application/json")
            return answer(start_response, 503, b"database unreachable", "text/plain")
        if replayed:  # the same signed request again (a replay within Slack's window): answered, ignored
            log.warning("ignored a replayed Slack request (signature seen within the last %s s)", inbound.WINDOW)
            return answer(start_response, 200, b"", "text/plain")
        with store_inbound.handling(signature, datetime.fromtimestamp(ts, UTC)):
            response = self.app.dispatch(request)
        self._forget_now_and_then()
        data = response.body.encode() if isinstance(response.body, str) else bytes(response.body or b"")
        start_response(
            status_line(response.status),
            [(k, v) for k, values in response.headers.items() for v in values if k.lower() != "content-length"]
            + [("Content-Length", str(len(data)))],
        )
        return [data]

    def _forget_now_and_then(self) -> None:
        """Keep the table of taken requests to Slack's window (any process may do it)."""
        self._handled += 1
        if self._handled % 500 != 1:
            return
        try:
            with self.store.session() as s:
                store_inbound.forget_before(s, before=datetime.fromtimestamp(self.now() - 2 * inbound.WINDOW, UTC))
                s.commit()
        except Exception as exc:  # the next try will do; a request's answer must not depend on it
            log.warning("could not forget old Slack requests: %s", exc)


def _bolt_request(raw: bytes, body: dict[str, Any], query: str, headers: dict[str, str]) -> BoltRequest:
    """Bolt's request around the body we parsed. Bolt must not parse the raw body again (its parser reads a
    form body starting with '{' as JSON and raises), and its context extraction raises on odd shapes a signed
    body may still have (`"team": true`): both are a 400, not a 500."""
    try:
        request = BoltRequest(body="", query=query, headers=dict(headers))
        request.raw_body, request.body = raw.decode(), body
        request.context = build_context(BoltContext({}), body)
    except Exception as exc:
        raise inbound.Rejected(400, f"Bolt cannot read this request ({type(exc).__name__}: {str(exc)[:80]})") from None
    return request


def _read_body(environ: dict[str, Any]) -> bytes:
    return read_body(environ, limit=inbound.MAX_BODY, too_large="; Slack's requests are a few KB")


Health = Callable[[], list[str]]  # what is behind, in words; empty when polling keeps up


def wsgi_app(
    app: App,
    store: Store,
    signing_secret: str | None,
    polling: Health | None = None,
    clicks_late: Callable[[], str | None] | None = None,
    alertmanager: WsgiApp | None = None,
) -> WsgiApp:
    """`alertmanager`: the app of POST /alertmanager (see rollback_bot/alertmanager.py); without it, 404."""
    slack = SlackEndpoint(app, store, signing_secret)

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/alertmanager" and method == "POST" and alertmanager is not None:
            return _timed(alertmanager, path, started, environ, start_response)
        if path == "/slack/events" and method == "POST":
            return _timed(slack, path, started, environ, start_response)
        if path == "/healthz" and method == "GET":
            doc: dict[str, Any] = {"ok": True, "database": "ok", "polling": "ok", "clicks": "ok"}
            try:
                with store.engine.connect() as conn:
                    conn.execute(text("select 1"))
                behind = polling() if polling is not None else []
                if behind:
                    doc |= {"ok": False, "polling": "behind", "behind": behind}
                late = clicks_late() if clicks_late is not None else None
                if late:  # nobody works clicks off: people click and nothing happens
                    doc |= {"ok": False, "clicks": late}
            except Exception as exc:
                doc |= {"ok": False, "database": type(exc).__name__, "polling": "unknown", "clicks": "unknown"}
            status = "200 OK" if doc["ok"] else "503 Service Unavailable"
            data = json.dumps(doc).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            REQUESTS.labels(path=path, status=status[:3]).observe(time.perf_counter() - started)
            return [data]
        return _metrics_or_404(path, method, start_response)

    return application


def _timed(
    app: WsgiApp, path: str, started: float, environ: dict[str, Any], start_response: StartResponse
) -> Iterable[bytes]:
    status_line = "500"

    def recording(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
        nonlocal status_line
        status_line = status.split()[0]
        return start_response(status, headers, *rest)

    body = app(environ, recording)
    REQUESTS.labels(path=path, status=status_line).observe(time.perf_counter() - started)
    return body


def scheduler_app(store: Store, leading: Callable[[], dict[str, Any]], polling: Health | None = None) -> WsgiApp:
    """The scheduler process's own port: GET /healthz (200 for a healthy leader or standby, with which it is;
    503 when the database cannot be reached or, leading, polling is behind) and GET /metrics."""

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/healthz" and method == "GET":
            doc: dict[str, Any] = {"ok": True, "database": "ok"}
            try:
                with store.engine.connect() as conn:
                    conn.execute(text("select 1"))
                doc |= leading()
                behind = polling() if polling is not None and doc.get("role") == "leader" else []
                doc["polling"] = "behind" if behind else "ok"
                if behind:
                    doc |= {"ok": False, "behind": behind}
            except Exception as exc:
                doc |= {"ok": False, "database": type(exc).__name__}
            status = "200 OK" if doc["ok"] else "503 Service Unavailable"
            data = json.dumps(doc).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        return _metrics_or_404(path, method, start_response)

    return application


def _metrics_or_404(path: str, method: str, start_response: StartResponse) -> list[bytes]:
    """GET /metrics (Prometheus' text format), or 404 for any other path: the tail of both apps."""
    if path == "/metrics" and method == "GET":
        return answer(start_response, 200, exposition(), CONTENT_TYPE_LATEST)
    return answer(start_response, 404, b"Not Found", "text/plain")


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 2048  # like gunicorn's backlog: a burst of clicks queues instead of waiting on SYN retries


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def make_http_server(application: Callable[..., Iterable[bytes]], host: str, port: int) -> WSGIServer:
    """A threaded development server (every request on its own thread); use gunicorn in production."""
    return make_server(host, port, application, server_class=_ThreadingServer, handler_class=_QuietHandler)
