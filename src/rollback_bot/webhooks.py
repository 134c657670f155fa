"""Sending an action's webhook: an Idempotency-Key, a timeout, retries with backoff on transient failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from rollback_bot.playbook.models import WebhookSpec
from rollback_bot.secrets import MissingVariable, expand, expand_all, redact, secrets_in, strings

__all__ = ["WebhookResult", "redact", "send", "webhook_secrets"]


@dataclass(frozen=True)
class WebhookResult:
    ok: bool
    status: int | None
    attempts: int
    response: str  # a short excerpt of the answer or the error; never headers (they may hold secrets)


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
    attempts = 0
    last = WebhookResult(False, None, 0, "not sent")
    for attempt in range(spec.retries + 1):
        attempts = attempt + 1
        try:
            resp = session.request(spec.method, url, data=data, headers=headers, timeout=spec.timeout.total_seconds())
        except requests.RequestException as exc:
            last = WebhookResult(False, None, attempts, redact(f"{type(exc).__name__}: {exc}", secrets)[:300])
        else:
            text = redact(resp.text, secrets)[:300]
            if 200 <= resp.status_code < 300:
                return WebhookResult(True, resp.status_code, attempts, text)
            last = WebhookResult(False, resp.status_code, attempts, text)
            if resp.status_code < 500 and resp.status_code != 429:
                return last
        if attempt < spec.retries:
            sleep(min(backoff * 2**attempt, 8.0))
    return last
