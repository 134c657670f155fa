"""A sandboxed model service on loopback: serves the playbook's metrics, takes an injected fault, and
accepts the action webhooks, after which its metrics recover.

Two models: the built-in GenAI service (its metrics are the shipped playbook's), played when every signal of the
playbook reads one of its metrics; else a model derived from the playbook's own thresholds (drill/synthetic.py):
healthy values for every signal, the fault on one trigger's signals, blended by the share of traffic the fault
still reaches (a staged action's stages move it back).

- JSON: every http signal's URL path answers the model's current metrics document.
- Prometheus: `GET /api/v1/query?query=Q` answers like Prometheus' HTTP API for the playbook's queries
  (a one-sample vector; an empty vector when the model has no value; `bad_data` for unknown queries).
- Webhooks: `POST <path>` of each action; repeated Idempotency-Keys are answered without re-applying.
  Effects by action id: lock, checkpoint, hotfix, regression, redeploy (fixed model everywhere),
  verify-slice (slice percent); any other action with a `percent` moves that share of traffic back to
  the stable version.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rollback_bot.drill.synthetic import Synthetic, derive, read_signals
from rollback_bot.httpio import serve_in_background
from rollback_bot.metrics.sources import PATH_PART, json_path
from rollback_bot.playbook.models import Playbook


class ModelState:
    """The sandboxed model's health, driven by the fault and by the actions applied to it."""

    def __init__(self, now: Callable[[], datetime], seed: int = 7) -> None:
        self.now = now
        self.fault_at: datetime | None = None
        self.reverted_pct = 0.0
        self.locked = False
        self.checkpoint = False
        self.hotfix = False
        self.regression = False
        self.slice_pct = 0.0
        self.redeployed = False
        self.affected_users = 0.0
        self._last = now()
        self._rng = random.Random(seed)
        self.lock = threading.Lock()

    @property
    def faulty_share(self) -> float:
        """Share of traffic still served by the faulty model."""
        if self.fault_at is None or self.redeployed:
            return 0.0
        return 1.0 - self.reverted_pct / 100.0

    def _noise(self, scale: float) -> float:
        return self._rng.uniform(-scale, scale)

    def metrics(self) -> dict[str, Any]:
        with self.lock:
            now = self.now()
            f = self.faulty_share
            if f and not self.locked:
                self.affected_users += 40 * f * (now - self._last).total_seconds() / 60
            self._last = now
            n = self._noise
            slice_live = self.checkpoint or self.slice_pct > 0
            slice_rps = 600 * max(self.slice_pct, 1.0 if self.checkpoint else 0.0) / 100
            return {
                "fatal_error_rate": 0.02 * f,
                "error_rate": 0.002 + 0.05 * f + n(0.0002),
                "p95_latency_ms": 320 + 900 * f + n(15),
                "throughput_rps": 600 + n(20),
                "error_logs_per_min": 1 + 60 * f + n(0.5),
                "cpu_util_pct": 45 + 40 * f + n(3),
                "gpu_util_pct": 60 + 35 * f + n(3),
                "availability_pct": 99.97 - 0.6 * f,
                "anomaly_score": 0.8 + 4.5 * f + n(0.1),
                "quality": {
                    "accuracy": 0.92 - 0.22 * f + n(0.003),
                    "sla_hit_rate": 0.96 - 0.2 * f + n(0.003),
                    "override_rate": 0.04 + 0.2 * f + n(0.002),
                },
                "release": {
                    "predictions_blocked_pct": 99.7 if self.locked and f else 0.0,
                    "traffic_reverted_pct": self.reverted_pct,
                    "hotfix_deploy_minutes": 35.0 if self.hotfix else None,
                    "regression_pass_pct": 100.0 if self.regression else (97.8 if self.fault_at else 100.0),
                },
                "impact": {
                    "affected_users": round(self.affected_users),
                    "complaints_per_hour": 30 * f * (0.3 if self.locked else 1.0),
                },
                "slice": {
                    "accuracy": 0.93 + n(0.002) if slice_live else None,
                    "p95_latency_ms": 310 + n(10) if slice_live else None,
                    "memory_gb": 14.2 if slice_live else None,
                    "error_rate": 0.002 + n(0.0002) if slice_live else None,
                    "throughput_rps": slice_rps + n(1) if slice_live else None,
                },
            }

    def apply(self, action: str, body: dict[str, Any]) -> str:
        with self.lock:
            percent = _percent(body)
            if action == "lock":
                self.locked = True
            elif action == "checkpoint":
                self.checkpoint = True
            elif action == "hotfix":
                self.hotfix = True
            elif action == "regression":
                self.regression = True
            elif action == "redeploy":
                self.redeployed = True
            elif action == "verify-slice":
                self.slice_pct = percent or 0.0
            elif percent is not None:  # any other staged action moves traffic back to the stable version
                self.reverted_pct = max(self.reverted_pct, percent)
            return f"{action} applied"


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` (as metrics.json_path reads it: 'a.b', 'a[0].b') in a document built up from nothing."""
    parts: list[str | int] = [int(i) if i else n for n, i in PATH_PART.findall(path)]
    cur: Any = doc
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        empty: Any = None if last else ([] if isinstance(parts[i + 1], int) else {})
        if isinstance(part, int):
            while len(cur) <= part:
                cur.append(None)
            if last:
                cur[part] = value
            else:
                cur[part] = cur[part] if cur[part] is not None else empty
                cur = cur[part]
        elif last:
            cur[part] = value
        else:
            cur = cur.setdefault(part, empty)


def _percent(body: dict[str, Any]) -> float | None:
    for key in ("percent", "stage"):
        if key in body:
            try:
                return float(body[key])
            except (TypeError, ValueError):
                return None
    return None


class _Server(ThreadingHTTPServer):
    """The bot reads many signals at once: a listen backlog of 5 (the default) would drop connections, and
    each dropped one costs a second (a minute of drill time at 1440x) before the client tries again."""

    daemon_threads = True
    request_queue_size = 128


Answer = tuple[int, Any]
Get = Callable[[str, str], Answer]  # (path, query string) -> (status, JSON body)
Post = Callable[[str, str, dict[str, Any]], Answer]  # (path, Idempotency-Key, JSON body) -> (status, JSON body)


class JsonServer:
    """JSON over HTTP on 127.0.0.1 (a free port): GETs answered by `get`, POST/PUT/PATCH by `post`."""

    def __init__(self, get: Get, post: Post) -> None:
        self._server = _Server(("127.0.0.1", 0), _handler(get, post))

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        serve_in_background(self._server, "sandbox")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(get: Get, post: Post) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            self._send(*get(parts.path, parts.query))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._send(400, {"error": "body is not JSON"})
                return
            if not isinstance(body, dict):
                self._send(400, {"error": "body is not a JSON object"})
                return
            self._send(*post(urlsplit(self.path).path, self.headers.get("Idempotency-Key", ""), body))

        do_PUT = do_POST
        do_PATCH = do_POST

    return Handler


class Sandbox:
    """The HTTP face of ModelState, bound to 127.0.0.1 on a free port."""

    def __init__(self, pb: Playbook, state: ModelState, target: str | None = None) -> None:
        self.pb = pb
        self.state = state
        self.queries: dict[str, str] = {}  # PromQL text -> metric key
        self.json_paths: dict[str, str] = {}  # URL path -> prefix inside the metrics document
        self.actions: dict[str, str] = {}  # URL path -> action id
        for name, spec in pb.signals.items():
            if spec.prometheus:
                self.queries[spec.prometheus] = name
            if spec.http:
                self.json_paths[urlsplit(spec.http).path or "/"] = urlsplit(spec.http).path.strip("/")
        for step in pb.ladder:
            for action in step.actions:
                self.actions[urlsplit(action.webhook.url).path] = action.id
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.applied: dict[str, dict[str, Any]] = {}  # Idempotency-Key -> the answer given
        self._http = JsonServer(self._get, self._post)
        self.synthetic: Synthetic | None = None
        if not self._builtin_serves(pb):
            self.synthetic = derive(pb, target)  # CannotSimulate says why not
        self.staged = {a.id for step in pb.ladder for a in step.actions if a.stages}

    def _builtin_serves(self, pb: Playbook) -> bool:
        """Whether the built-in model has every metric the playbook reads (the shipped playbook's)."""
        doc = self.state.metrics()
        for name in read_signals(pb):
            spec = pb.signals[name]
            if spec.prometheus is not None and name not in doc:
                return False
            if spec.http is not None and spec.json_path is not None:
                try:  # a metric it has (None: not served right now, e.g. a slice not yet live)
                    json_path(self._part(doc, urlsplit(spec.http).path or "/"), spec.json_path)
                except KeyError:
                    return False
        return True

    def value(self, signal: str) -> float | None:
        """A signal's value now, from whichever model plays."""
        if self.synthetic is not None:
            return self.synthetic.value(signal, self.state.faulty_share)
        found = self.state.metrics().get(signal)
        return float(found) if isinstance(found, int | float) else None

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> Sandbox:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def document(self, path: str) -> Any:
        """`/slice` answers the 'slice' part of the metrics; any other path the whole document. A derived
        model answers each signal read at this path at its JSON path."""
        if self.synthetic is not None:
            built: dict[str, Any] = {}
            for name in read_signals(self.pb):
                spec = self.pb.signals[name]
                if spec.http is not None and spec.json_path and (urlsplit(spec.http).path or "/") == path:
                    _put(built, spec.json_path, self.value(name))
            return built
        return self._part(self.state.metrics(), path)

    def _part(self, doc: dict[str, Any], path: str) -> Any:
        """The built-in model's document as `path` answers it: its part named by the path, else all of it."""
        part = doc.get(self.json_paths.get(path, ""))
        return part if isinstance(part, dict) else doc

    def query(self, promql: str) -> Answer:
        name = self.queries.get(promql)
        if name is None:
            return 400, {"status": "error", "errorType": "bad_data", "error": f"sandbox has no series for {promql!r}"}
        value = self.value(name)
        ts = self.state.now().timestamp()
        if value is None:
            return 200, {"status": "success", "data": {"resultType": "vector", "result": []}}
        text = "NaN" if math.isnan(value) else repr(float(value))
        sample = {"metric": {"__name__": name}, "value": [ts, text]}
        return 200, {"status": "success", "data": {"resultType": "vector", "result": [sample]}}

    def _get(self, path: str, query: str) -> Answer:
        if path == "/api/v1/query":
            return self.query(parse_qs(query).get("query", [""])[0])
        if path in self.json_paths:
            return 200, self.document(path)
        return 404, {"error": f"no such path {path}"}

    def _post(self, path: str, key: str, body: dict[str, Any]) -> Answer:
        action = self.actions.get(path)
        if action is None:
            return 404, {"error": f"no action at {path}"}
        self.requests.append((path, key, body))
        if key and key in self.applied:
            return 200, {**self.applied[key], "replayed": True}
        if self.synthetic is not None and action in self.staged and _percent(body) is None:
            body = {**body, "percent": key.rsplit("/", 1)[-1]}  # the stage, from its Idempotency-Key
        answer = {"ok": True, "result": self.state.apply(action, body)}
        if key:
            self.applied[key] = answer
        return 200, answer
