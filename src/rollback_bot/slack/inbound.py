"""What arrives on POST /slack/events, checked before anything acts on it: the signature and timestamp over
the raw body first, then the shape of the command or click. Anything wrong is a 4xx with a one-line reason;
nothing a sender controls can raise past this module."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from rollback_bot.httpio import Rejected as Rejected  # the refusal this module raises, for its callers

WINDOW = 300  # seconds: Slack's replay window; a request older or newer than this is refused
MAX_BODY = 256 * 1024  # Slack's payloads are a few KB; refuse anything much larger unread

SlackId = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,32}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Command(_Model):
    """A slash command, as Slack posts it (form-encoded)."""

    command: Annotated[str, StringConstraints(min_length=2, max_length=64)]
    text: Annotated[str, StringConstraints(max_length=4000)] = ""
    user_id: SlackId
    channel_id: SlackId
    channel_name: Annotated[str, StringConstraints(max_length=256)] = ""
    response_url: Annotated[str, StringConstraints(max_length=1024)] = ""


class _User(_Model):
    id: SlackId


class _Action(_Model):
    action_id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    value: Annotated[str, StringConstraints(max_length=2000)] = ""


class _Channel(_Model):
    id: SlackId


class _Container(_Model):
    message_ts: Annotated[str, StringConstraints(max_length=64)] = ""
    channel_id: Annotated[str, StringConstraints(max_length=32)] = ""


class Click(_Model):
    """A button click (`block_actions`): who, which button, where."""

    type: Literal["block_actions"]
    user: _User
    actions: Annotated[list[_Action], Field(min_length=1, max_length=25)]
    channel: _Channel | None = None
    container: _Container | None = None
    response_url: Annotated[str, StringConstraints(max_length=1024)] = ""

    @property
    def action(self) -> _Action:
        return self.actions[0]

    @property
    def channel_id(self) -> str | None:
        if self.channel is not None:
            return self.channel.id
        return self.container.channel_id if self.container and self.container.channel_id else None

    @property
    def message_ts(self) -> str | None:
        return self.container.message_ts if self.container and self.container.message_ts else None


def verify(
    secret: str, headers: Mapping[str, str], raw: bytes, now: Callable[[], float] = time.time
) -> tuple[str, int]:
    """Slack's v0 signature over `v0:{timestamp}:{raw body}`, and a timestamp within the replay window."""
    ts_text = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not ts_text or not signature:
        raise Rejected(401, "no X-Slack-Request-Timestamp or X-Slack-Signature header")
    if not ts_text.isdigit() or len(ts_text) > 12:
        raise Rejected(401, "X-Slack-Request-Timestamp is not a Unix time")
    ts = int(ts_text)
    if abs(now() - ts) > WINDOW:
        raise Rejected(401, f"timestamp {ts} is more than {WINDOW} s from now (replayed or a wrong clock)")
    base = b"v0:" + ts_text.encode() + b":" + raw
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise Rejected(401, "signature does not match (wrong signing secret, or the body was altered)")
    return signature, ts


def parse(raw: bytes, content_type: str) -> dict[str, Any]:
    """The body as Bolt would read it, but refusing what no listener could use: 400 with the reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(400, f"body is not UTF-8 (byte {exc.start})") from None
    if "\x00" in text:
        raise Rejected(400, "body contains a NUL byte")
    if content_type.startswith("application/json"):
        return _no_nul(_json_object(text, "body"))
    fields = dict(parse_qsl(text, keep_blank_values=True))
    if any("\x00" in k or "\x00" in v for k, v in fields.items()):  # %00: PostgreSQL cannot store it
        raise Rejected(400, "a field contains a NUL byte")
    if "payload" in fields:
        body = _no_nul(_json_object(fields["payload"], "payload"))
        kind = body.get("type")
        if not isinstance(kind, str):
            raise Rejected(400, "payload has no 'type'")
        if kind == "block_actions":
            click(body)
        return body
    if "command" in fields:
        command(fields)
        return fields
    raise Rejected(400, "neither a slash command nor an interaction payload")


def command(body: Mapping[str, Any]) -> Command:
    try:
        return Command.model_validate(body)
    except ValidationError as exc:
        raise Rejected(400, "slash command: " + _first(exc)) from None


def click(body: Mapping[str, Any]) -> Click:
    try:
        return Click.model_validate(body)
    except ValidationError as exc:
        raise Rejected(400, "block_actions payload: " + _first(exc)) from None


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, f"{what} is not JSON: {str(exc)[:80]}") from None
    if not isinstance(value, dict):
        raise Rejected(400, f"{what} is not a JSON object")
    return value


def _no_nul(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse a JSON body with a NUL anywhere ("\\u0000"): no listener can record it in PostgreSQL."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise Rejected(400, "a JSON string contains a NUL character")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{where}: {err['msg']}"[:200]
