"""Secrets never stored: a webhook endpoint that echoes every `${VAR}` of the action (header, URL, body) in
every encoding leaves no trace of them in any table or export; only status, safe headers and 2 KB of body
are kept."""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import pytest
import sqlalchemy as sa

from rollback_bot import flows, webhooks
from rollback_bot.export import export_text
from rollback_bot.playbook.models import WebhookSpec
from tests.flows.conftest import Env
from tests.helpers import Recorded, loopback_session

SECRETS = {
    "DEPLOY_TOKEN": "s3cr3t/Deploy+Token=9f8e",  # '/', '+' and '=' make its URL and base64 forms differ
    "HOOK_KEY": "hk-77Q2-url-key",
    "BODY_TOKEN": "Body.Tok3n~only",
}
BASIC_USER, BASIC_PASSWORD = "deploy-bot", "pa55-Word-xyz"
SECRETS["DEPLOY_BASIC"] = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
TAIL = "TAIL-BEYOND-2KB"


def encodings(secret: str) -> dict[str, str]:
    """Every way the endpoint below sends `secret` back."""
    out = {
        "plain": secret,
        "lower": secret.lower(),
        "upper": secret.upper(),
        "url": quote(secret, safe=""),
        "url_lower_hex": quote(secret, safe="").lower(),
        "url_plus": quote_plus(secret),
        "basic": "Basic " + base64.b64encode(f"{BASIC_USER}:{secret}".encode()).decode(),
    }
    for name, encode in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
        out[name] = encode(secret.encode()).decode()
        out[f"{name}_nopad"] = out[name].rstrip("=")
        out[f"{name}_lower"] = encode(secret.lower().encode()).decode()
        for prefix in ("", "a", "ab"):  # the three alignments inside a longer base64 run
            out[f"{name}_in_run_{len(prefix)}"] = encode(f"{prefix}{{'token': '{secret}'}}".encode()).decode()
    return out


def echo(rec: Recorded) -> tuple[int, Any, dict[str, str]]:
    """A leaky endpoint: every secret it was sent, in every encoding, first in the body (within what is
    kept), and in headers; then more body than is kept."""
    sent = {
        "DEPLOY_TOKEN": rec.headers["Authorization"].removeprefix("Bearer "),
        "HOOK_KEY": re.search(r"key=([^&]+)", rec.path).group(1),  # type: ignore[union-attr]
        "BODY_TOKEN": rec.body["token"],
        "DEPLOY_BASIC": rec.headers["X-Basic"].removeprefix("Basic "),
        "password": base64.b64decode(rec.headers["X-Basic"].removeprefix("Basic ")).decode().split(":", 1)[1],
    }
    lines = [f"{name} {form}: {value}" for name, secret in sent.items() for form, value in encodings(secret).items()]
    lines.append(f"request: {json.dumps(rec.headers)} {rec.path}")
    body = "\n".join(lines)
    assert len(body) < 2048 * 4  # most of it is within what is read and redacted; the cut comes after
    headers = {
        "X-Echo-Authorization": rec.headers["Authorization"],  # not allow-listed: never kept
        "Location": f"/done?token={quote(sent['DEPLOY_TOKEN'], safe='')}&k={sent['HOOK_KEY']}",
        "X-Request-Id": "req-42",
    }
    return 200, (body + "\n" + "x" * 5000 + TAIL).encode(), headers


def leaks(text: str, secret: str) -> list[str]:
    """Where `secret` can still be read in `text`: plainly in any case, URL-decoded, or base64-decoded
    (any alphabet, any alignment). A decoder, not the redactor's list of forms: it catches what that misses."""
    found = []
    low = secret.lower()
    for label, view in (("text", text), ("url", unquote(text)), ("url+", unquote_plus(text))):
        if low in view.lower():
            found.append(label)
    for run in re.findall(r"[A-Za-z0-9+/_%-]{8,}", text):
        std = unquote(run).replace("-", "+").replace("_", "/")
        for shift in range(4):
            chunk = std[shift:][: (len(std) - shift) // 4 * 4]
            try:
                decoded = base64.b64decode(chunk)
            except ValueError:
                continue
            if low.encode() in decoded.lower():
                found.append(f"base64 {run[:40]}")
    return found


def whole_database(env: Env) -> str:
    """Every value of every column of every table, as text."""
    engine = env.deps.store.engine
    out = []
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                out += [v if isinstance(v, str) else json.dumps(v, default=str) for v in row]
    return "\n".join(out)


def with_secret_webhook(env: Env) -> Env:
    old = 'webhook: {url: "' + env.http.url + '/lock", body: {svc: "{{ service }}"}}'
    new = (
        'webhook: {url: "' + env.http.url + '/lock?key=${HOOK_KEY}", '
        'body: {svc: "{{ service }}", token: "${BODY_TOKEN}"}, '
        'headers: {Authorization: "Bearer ${DEPLOY_TOKEN}", X-Basic: "Basic ${DEPLOY_BASIC}"}}'
    )
    text = env.path.read_text()
    assert old in text
    env.path.write_text(text.replace(old, new))
    return env.restart()


def test_an_echoing_endpoint_leaves_no_trace_in_the_database_or_exports(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    env = with_secret_webhook(env)
    env.http.routes["/lock"] = echo
    env.metrics["errors"] = 0.05
    env.poll()
    assert flows.approve(env.deps, 1, "lock", "UIC").ok
    [post] = env.http.posts("/lock")  # everything was sent ...
    assert post.headers["Authorization"] == f"Bearer {SECRETS['DEPLOY_TOKEN']}"
    assert f"key={SECRETS['HOOK_KEY']}" in post.path and post.body["token"] == SECRETS["BODY_TOKEN"]
    flows.add_note(env.deps, 1, "URESP", "rolled back")
    flows.resolve(env.deps, 1, "UIC")

    result = env.last("action.succeeded")  # ... and what is kept is status, safe headers, a short body
    assert result.details["http_status"] == 200
    assert set(result.details["headers"]) == {"Content-Type", "Content-Length", "Location", "X-Request-Id"}
    assert result.details["headers"]["X-Request-Id"] == "req-42"
    assert result.details["headers"]["Location"].startswith("/done?token=[redacted]")
    response = result.details["response"]
    assert "[redacted]" in response and TAIL not in response
    assert len(response) <= webhooks.BODY_LIMIT + 3

    places = {"database": whole_database(env)}
    for fmt in ("json", "csv", "md", "html"):
        places[fmt] = export_text(env.deps.store, 1, fmt)[0]
    assert "[redacted]" in places["json"] and "[redacted]" in places["csv"]
    for secret in [*SECRETS.values(), BASIC_PASSWORD, f"{BASIC_USER}:{BASIC_PASSWORD}"]:
        for where, text in places.items():
            assert leaks(text, secret) == [], (secret, where)


def test_an_unreachable_endpoint_error_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_KEY", SECRETS["HOOK_KEY"])
    spec = WebhookSpec.model_validate({"url": "http://127.0.0.1:9/hook?key=${HOOK_KEY}", "retries": 0})
    result = webhooks.send(loopback_session(), spec, spec.url, {}, "k", sleep=lambda s: None)
    assert not result.ok and result.status is None and "ConnectionError" in result.response
    assert "[redacted]" in result.response and leaks(result.response, SECRETS["HOOK_KEY"]) == []


def test_an_unset_variable_is_not_sent_as_an_empty_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPLOY_TOKEN", raising=False)
    spec = WebhookSpec.model_validate(
        {"url": "http://127.0.0.1:9/", "headers": {"Authorization": "Bearer ${DEPLOY_TOKEN}"}}
    )
    result = webhooks.send(loopback_session(), spec, spec.url, {}, "k", sleep=lambda s: None)
    assert (result.ok, result.attempts) == (False, 0)
    assert result.response == "environment variable DEPLOY_TOKEN is not set; the webhook was not sent"


@pytest.mark.parametrize("secret", ["abc", "dev"])
def test_values_shorter_than_4_characters_are_not_redacted(secret: str) -> None:
    assert webhooks.redact(f"the {secret} deploy", [secret]) == f"the {secret} deploy"
