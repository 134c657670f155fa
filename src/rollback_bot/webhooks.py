"""Sending an action's webhook: an Idempotency-Key, a timeout, retries with backoff on transient failure;
and what is kept of the answer: status, a few safe headers, a short body, every secret redacted."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from rollback_bot.playbook.models import WebhookSpec
from rollback_bot.secrets import MissingVariable, expand, expand_all, redact, secrets_in, strings

__all__ = ["BODY_LIMIT", "SAFE_HEADERS", "WebhookResult", "redact", "send", "webhook_secrets"]

BODY_LIMIT = 2048  # characters of the answer's body kept
SAFE_HEADERS = ("Content-Type", "Content-Length", "X-Request-Id", "Retry-After", "Location")
_HEADER_LIMIT = 256
_ERROR_LIMIT = 300
# Read this much, redact, then cut to BODY_LIMIT: a secret (in any encoding) straddling BODY_LIMIT is
# whole in what was read, so the cut never leaves a piece of it.
_READ_LIMIT = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # NUL cannot be stored by PostgreSQL


@dataclass(frozen=True)
class WebhookResult:
    ok: bool
    status: int | None
    attempts: int
    response: str  # at most BODY_LIMIT characters of the answer's body, or the error; redacted
    headers: dict[str, str] = field(default_factory=dict)  # SAFE_HEADERS the answer had, redacted


def webhook_secrets(spec: WebhookSpec) -> list[str]:
    """The values of every `${VAR}` the webhook uses (url, headers, body): never to be recorded."""
    texts = [spec.url, *spec.headers.values(), *(text for _, text in strings(spec.body))]
    return list(dict.fromkeys(s for text in texts for s in secrets_in(text)))


def send(
    session: requests.Session,
    spec: WebhookSpec,
    url: str,
    body: Any,
    idempotency_key: str,
    sleep: Callable[[float], None],
    backoff: float = 0.5,
) -> WebhookResult:
    """POST (or PUT/PATCH) the body; retry connection errors, timeouts, 429 and 5xx; never 4xx. `url` and
    `body` are rendered; their `${VAR}`s, and the headers', are expanded here. An unset one: not sent."""
    secrets = webhook_secrets(spec)
    try:
        url = expand(url, strict=True)
        headers = {k: expand(v, strict=True) for k, v in spec.headers.items()}
        data = json.dumps(expand_all(body, strict=True))
    except MissingVariable as exc:
        return WebhookResult(False, None, 0, f"{exc}; the webhook was not sent")
    headers.update({"Idempotency-Key": idempotency_key, "Content-Type": "application/json"})
    last = WebhookResult(False, None, 0, "not sent")
    for attempt in range(spec.retries + 1):
        attempts = attempt + 1
        try:
            last = _attempt(session, spec, url, data, headers, secrets, attempts)
        except requests.RequestException as exc:
            last = WebhookResult(False, None, attempts, _error(exc, secrets))
        except Exception as exc:  # e.g. a header value that is not Latin-1: no retry will change that
            return WebhookResult(False, None, attempts, _error(exc, secrets))
        else:
            if last.ok or (last.status is not None and last.status < 500 and last.status != 429):
                return last
        if attempt < spec.retries:
            sleep(min(backoff * 2**attempt, 8.0))
    return last


def _attempt(
    session: requests.Session,
    spec: WebhookSpec,
    url: str,
    data: str,
    headers: dict[str, str],
    secrets: list[str],
    attempts: int,
) -> WebhookResult:
    timeout = spec.timeout.total_seconds()
    with session.request(spec.method, url, data=data, headers=headers, timeout=timeout, stream=True) as resp:
        raw = bytearray()
        for chunk in resp.iter_content(8192):
            raw += chunk
            if len(raw) >= _READ_LIMIT:
                break
        kept = {
            name: _clean(redact(_CONTROL.sub("\ufffd", value), secrets), _HEADER_LIMIT)
            for name in SAFE_HEADERS
            if (value := resp.headers.get(name)) is not None
        }
        declared = "charset=" in resp.headers.get("Content-Type", "").lower()  # else requests guesses Latin-1
        text = _decode(bytes(raw[:_READ_LIMIT]), resp.encoding if declared else None)
        body = _clean(redact(text, secrets), BODY_LIMIT)
        return WebhookResult(200 <= resp.status_code < 300, resp.status_code, attempts, body, kept)


def _decode(raw: bytes, encoding: str | None) -> str:
    """The body as text in its declared charset (so that an echo in UTF-16 is redacted too), else UTF-8."""
    try:
        text = raw.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset, or a codec that is not a text encoding
        text = raw.decode("utf-8", errors="replace")
    return _CONTROL.sub("\ufffd", text)


def _clean(text: str, limit: int) -> str:
    """Cut after redacting, never before: a cut could split a secret and leave a piece no pattern finds."""
    return text if len(text) <= limit else text[:limit] + "..."


def _error(exc: Exception, secrets: list[str]) -> str:
    """An exception's text (requests puts the URL into it) redacted, then cut."""
    return _clean(_CONTROL.sub("\ufffd", redact(f"{type(exc).__name__}: {exc}", secrets)), _ERROR_LIMIT)
