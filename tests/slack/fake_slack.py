"""A fake Slack Web API on loopback: records every call, validates every Block Kit payload with
slack_sdk's models (plus the limits the SDK does not check), and can be told to fail."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from slack_sdk.models.blocks import ActionsBlock, Block, SectionBlock


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    ok: bool = True  # False: the fake refused it (outage, rate limit, invalid blocks)

    @property
    def blocks(self) -> list[dict[str, Any]]:
        raw = self.params.get("blocks") or []
        return json.loads(raw) if isinstance(raw, str) else raw

    def text_of_blocks(self) -> str:
        """Every piece of text in the message, joined: what a person would read."""
        out: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if node.get("type") in ("mrkdwn", "plain_text") and "text" in node:
                    out.append(str(node["text"]))
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(self.blocks)
        return "\n".join(out)

    def buttons(self) -> list[dict[str, Any]]:
        return [e for b in self.blocks if b.get("type") == "actions" for e in b.get("elements", [])]


def block_problems(blocks: list[dict[str, Any]]) -> list[str]:
    """What Slack would refuse, checked with slack_sdk's models and by hand where they do not check."""
    problems = []
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks (max 50)")
    try:
        parsed = Block.parse_all(blocks)
        for block in parsed:
            block.to_dict()  # runs slack_sdk's validators recursively
    except Exception as exc:
        return [*problems, f"slack_sdk refused the blocks: {exc}"]
    action_ids: list[str] = []
    for block in parsed:
        if isinstance(block, SectionBlock):
            if block.text is not None and len(block.text.text) > 3000:
                problems.append("section text over 3000 characters")
            if block.fields and len(block.fields) > 10:
                problems.append("more than 10 section fields")
        if isinstance(block, ActionsBlock):
            if not block.elements:
                problems.append("empty actions block")
            for e in block.elements:
                action_ids.append(getattr(e, "action_id", ""))
                text = getattr(getattr(e, "text", None), "text", "")
                if len(text) > 75:
                    problems.append(f"button text over 75 characters: {text!r}")
    if len(action_ids) != len(set(action_ids)):
        problems.append(f"duplicate action_ids: {action_ids}")
    return problems


@dataclass
class FakeSlack:
    groups: dict[str, list[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fail: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = field(default_factory=dict)
    down: bool = False  # every method answers 503
    socket_url: str = ""  # what apps.connections.open hands out (Socket Mode)
    uploads: dict[str, bytes] = field(default_factory=dict)  # file id -> bytes uploaded

    def __post_init__(self) -> None:
        self._ts = 1000
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                if parts.path.startswith("/upload/"):  # the file bytes of files_upload_v2
                    fake.uploads[parts.path.rsplit("/", 1)[-1]] = data
                    fake.calls.append(Call("upload", {"path": parts.path, "bytes": len(data)}))
                    self._answer(200, {"ok": True})
                    return
                raw = data.decode()
                params: dict[str, Any] = dict(parse_qsl(parts.query))
                if raw:
                    if "json" in (self.headers.get("Content-Type") or ""):
                        params.update(json.loads(raw))
                    else:
                        params.update(dict(parse_qsl(raw)))
                method = parts.path.rsplit("/", 1)[-1] if parts.path.startswith("/api/") else parts.path
                status, body, headers = fake.answer(method, params)
                self._answer(status, body, headers)

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            call = Call(method, params)
            self.calls.append(call)
            if self.down and not method.startswith("/response/"):
                call.ok = False
                return 503, {"ok": False, "error": "service_unavailable"}, {}
            queued = self.fail.get(method)
            if queued:
                call.ok = False
                return queued.pop(0)
            if "blocks" in params:
                problems = block_problems(call.blocks)
                if problems:
                    call.ok = False
                    self.problems += [f"{method}: {p}" for p in problems]
                    return 200, {"ok": False, "error": "invalid_blocks", "errors": problems}, {}
            if method.startswith("/response/"):
                return 200, {"ok": True}, {}
            if method == "files.getUploadURLExternal":
                self._ts += 1
                file_id = f"F{self._ts}"
                return 200, {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}, {}
            if method == "files.completeUploadExternal":
                files = json.loads(params["files"]) if isinstance(params.get("files"), str) else params["files"]
                return 200, {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}, {}
            if method == "apps.connections.open":
                return 200, {"ok": True, "url": self.socket_url}, {}
            if method == "auth.test":
                return 200, {"ok": True, "user": "rollback-bot", "team": "Test", "user_id": "UBOT"}, {}
            if method == "chat.postMessage":
                self._ts += 1
                channel = params["channel"]
                channel_id = (
                    "C" + channel.lstrip("#").upper().replace("-", "")[:10] if channel.startswith("#") else channel
                )
                return 200, {"ok": True, "channel": channel_id, "ts": f"{self._ts}.000100"}, {}
            if method == "chat.update":
                return 200, {"ok": True, "channel": params["channel"], "ts": params["ts"]}, {}
            if method == "chat.postEphemeral":
                return 200, {"ok": True, "message_ts": "1.1"}, {}
            if method == "usergroups.users.list":
                return 200, {"ok": True, "users": self.groups.get(params.get("usergroup", ""), [])}, {}
            if method == "users.info":
                user = params.get("user", "")
                return (
                    200,
                    {
                        "ok": True,
                        "user": {
                            "id": user,
                            "name": user.lower(),
                            "profile": {"display_name": self.names.get(user, user)},
                        },
                    },
                    {},
                )
            return 200, {"ok": False, "error": "unknown_method"}, {}

    # --- what tests read ---------------------------------------------------------------------------
    def of(self, method: str) -> list[Call]:
        """Calls Slack accepted."""
        return [c for c in self.calls if c.method == method and c.ok]

    def attempts(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def parents(self) -> list[Call]:
        return [c for c in self.of("chat.postMessage") if "thread_ts" not in c.params]

    def thread(self) -> list[Call]:
        return [c for c in self.of("chat.postMessage") if "thread_ts" in c.params]

    def ephemerals(self, user: str | None = None) -> list[Call]:
        return [c for c in self.of("chat.postEphemeral") if user is None or c.params.get("user") == user]

    def uploaded(self) -> dict[str, bytes]:
        """Files completed into a conversation: title -> bytes (what people see in the thread)."""
        out = {}
        for call in self.of("files.completeUploadExternal"):
            files = call.params["files"]
            for f in json.loads(files) if isinstance(files, str) else files:
                out[f.get("title") or f["id"]] = self.uploads.get(f["id"], b"")
        return out

    def responses(self) -> list[Call]:
        return [c for c in self.calls if c.method.startswith("/response/")]

    def last_alert(self) -> Call:
        """The alert as Slack now shows it: the last chat.update, else the parent post."""
        updates = self.of("chat.update")
        return updates[-1] if updates else self.parents()[-1]

    def __iter__(self) -> Iterator[Call]:
        return iter(list(self.calls))
