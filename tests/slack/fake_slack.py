"""A fake Slack Web API on loopback: records every call, validates every Block Kit payload with
slack_sdk's models (plus the limits the SDK does not check), keeps the messages it was sent per channel
and thread (read back with conversations.history/replies, metadata included only when asked, like Slack),
and can be told to fail, or to perform a call and lose its answer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from slack_sdk.models.blocks import ActionsBlock, Block, SectionBlock

from rollback_bot.httpio import serve_in_background

# How the answer to a performed call is lost: "drop" closes the connection without answering, "hang" waits
# `hang_seconds` (past the client's timeout) and then closes it, "500" answers a server error; a function is
# called (say, to kill -9 the caller) and the connection then closed; None answers that call as usual.
Loss = str | Callable[[], None]


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    ok: bool = True  # False: the fake refused it (outage, rate limit, invalid blocks)
    loss: Loss | None = None  # performed, but the answer was lost (how)

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
    down: bool = False  # every method answers 503 ...
    down_answer: tuple[int, dict[str, Any], dict[str, str]] = (503, {"ok": False, "error": "service_unavailable"}, {})
    socket_url: str = ""  # what apps.connections.open hands out (Socket Mode)
    uploads: dict[str, bytes] = field(default_factory=dict)  # file id -> bytes uploaded
    channels: dict[str, str] = field(default_factory=lambda: {f"chan-{i:03}": f"CNOISE{i:03}" for i in range(150)})
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # channel ID -> messages, oldest first
    lose: dict[str, list[Loss | None]] = field(default_factory=dict)  # method -> its next performed calls' fate
    hang_seconds: float = 3.0

    def __post_init__(self) -> None:
        self._ts = 1000
        self._lock = threading.RLock()
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
                call, status, body, headers = fake.perform(method, params)
                loss = call.loss
                if loss is None:
                    self._answer(status, body, headers)
                elif loss == "500":
                    self._answer(500, {"ok": False, "error": "internal_error"})
                elif loss == "hang":
                    time.sleep(fake.hang_seconds)
                elif callable(loss):
                    loss()
                # "drop", and after "hang" or a function: the connection closes with no answer

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        serve_in_background(self.server)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def channel_id(self, channel: str) -> str:
        """'#ops' -> 'COPS' (registered as a channel); an ID stays as it is."""
        if not channel.startswith("#"):
            return channel
        name = channel[1:]
        return self.channels.setdefault(name, "C" + name.upper().replace("-", "")[:10])

    def perform(self, method: str, params: dict[str, Any]) -> tuple[Call, int, dict[str, Any], dict[str, str]]:
        """Answer a call; a call performed while a loss is queued for its method takes that loss."""
        with self._lock:
            status, body, headers = self.answer(method, params)
            queued = self.lose.get(method)
            if status == 200 and body.get("ok") and queued:
                self.calls[-1].loss = queued.pop(0)
            return self.calls[-1], status, body, headers

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            call = Call(method, params)
            self.calls.append(call)
            if self.down and not method.startswith("/response/"):
                call.ok = False
                return self.down_answer  # ... or this (say, 429 with Retry-After)
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
                channel_id = self.channel_id(params["channel"])
                message = {"type": "message", "ts": f"{self._ts}.000100", "user": "UBOT", "bot_id": "BBOT"}
                message |= {k: params[k] for k in ("text", "blocks", "thread_ts", "metadata") if k in params}
                if isinstance(message.get("metadata"), str):
                    message["metadata"] = json.loads(message["metadata"])
                self.messages.setdefault(channel_id, []).append(message)
                return 200, {"ok": True, "channel": channel_id, "ts": message["ts"], "message": message}, {}
            if method == "chat.update":
                for message in self.messages.get(params["channel"], []):
                    if message["ts"] == params["ts"]:
                        message |= {k: params[k] for k in ("text", "blocks") if k in params}
                return 200, {"ok": True, "channel": params["channel"], "ts": params["ts"]}, {}
            if method in ("conversations.history", "conversations.replies"):
                return self._read(method, params)
            if method == "conversations.list":
                listed = [{"id": i, "name": n, "is_channel": True} for n, i in self.channels.items()]
                return 200, {"ok": True, **_page(listed, "channels", params)}, {}
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

    def _read(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """conversations.history (top-level messages, newest first) and .replies (a thread, oldest first),
        with message metadata only when include_all_metadata is set, as Slack does."""
        channel = params.get("channel", "")
        if channel not in self.messages and channel not in self.channels.values():
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        stored = self.messages.get(channel, [])
        if method == "conversations.history":
            found = [m for m in reversed(stored) if m.get("thread_ts", m["ts"]) == m["ts"]]
        else:
            found = [m for m in stored if m["ts"] == params.get("ts") or m.get("thread_ts") == params.get("ts")]
            if not found:
                return 200, {"ok": False, "error": "thread_not_found"}, {}
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        shown = [{k: v for k, v in m.items() if with_metadata or k != "metadata"} for m in found]
        return 200, {"ok": True, **_page(shown, "messages", params)}, {}

    # --- what tests read ---------------------------------------------------------------------------
    def visible(self, channel: str | None = None) -> list[dict[str, Any]]:
        """The messages people see: in one channel (name or ID) or all, threads included, in posting order."""
        if channel is not None:
            return list(self.messages.get(self.channel_id(channel), []))
        return sorted((m for ms in self.messages.values() for m in ms), key=lambda m: float(m["ts"]))

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


def _page(items: list[dict[str, Any]], key: str, params: dict[str, Any]) -> dict[str, Any]:
    """Slack's cursor pagination: `limit` items from `cursor` on, and the cursor of the next page."""
    start = int(params.get("cursor") or 0)
    end = start + int(params.get("limit") or 100)
    more = end < len(items)
    return {key: items[start:end], "has_more": more, "response_metadata": {"next_cursor": str(end) if more else ""}}
