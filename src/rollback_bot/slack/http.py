"""The HTTP face: POST /slack/events (Bolt), GET /healthz, GET /metrics. A WSGI app, so gunicorn can
serve it in production; `serve()` runs it on a threaded development server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.context import BoltContext
from slack_bolt.request.internals import build_context
from sqlalchemy import text

from rollback_bot.store.database import Store
from rollback_bot.telemetry import REGISTRY, REQUESTS

StartResponse = Callable[..., Any]


class GuardedHandler(SlackRequestHandler):
    """Bolt 1.30 reads any form body containing the word 'payload' as an interactivity payload, finds
    none, and drops the request: `/rollback note the payload service is down` would get a 404. A slash
    command is a form body with a `command` field and no `payload` field; parse it as such."""

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        req = BoltRequest(body=request.get_body(), query=request.query_string, headers=request.get_headers())
        if not req.body and "payload" in req.raw_body:
            fields = dict(parse_qsl(req.raw_body, keep_blank_values=True))
            if "command" in fields and "payload" not in fields:
                req.body = fields
                req.context = build_context(BoltContext({}), fields)
        return self.app.dispatch(req)


WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Health = Callable[[], list[str]]  # what is behind, in words; empty when polling keeps up


def wsgi_app(app: App, store: Store, polling: Health | None = None) -> WsgiApp:
    slack = GuardedHandler(app)

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/slack/events" and method == "POST":
            status_line = "500"

            def recording(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
                nonlocal status_line
                status_line = status.split()[0]
                return start_response(status, headers, *rest)

            body = slack(environ, recording)
            REQUESTS.labels(path=path, status=status_line).observe(time.perf_counter() - started)
            return body
        if path == "/healthz" and method == "GET":
            doc: dict[str, Any] = {"ok": True, "database": "ok", "polling": "ok"}
            try:
                with store.engine.connect() as conn:
                    conn.execute(text("select 1"))
                behind = polling() if polling is not None else []
                if behind:
                    doc |= {"ok": False, "polling": "behind", "behind": behind}
            except Exception as exc:
                doc |= {"ok": False, "database": type(exc).__name__, "polling": "unknown"}
            status = "200 OK" if doc["ok"] else "503 Service Unavailable"
            data = json.dumps(doc).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            REQUESTS.labels(path=path, status=status[:3]).observe(time.perf_counter() - started)
            return [data]
        if path == "/metrics" and method == "GET":
            data = generate_latest(REGISTRY)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(data)))])
            return [data]
        data = b"Not Found"
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
        return [data]

    return application


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def make_http_server(application: Callable[..., Iterable[bytes]], host: str, port: int) -> WSGIServer:
    """A threaded development server (every request on its own thread); use gunicorn in production."""
    return make_server(host, port, application, server_class=_ThreadingServer, handler_class=_QuietHandler)
