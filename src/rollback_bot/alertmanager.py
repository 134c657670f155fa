"""POST /alertmanager: Alertmanager's webhook (payload version 4) as a signal source.

Bearer token from ALERTMANAGER_TOKEN, compared in constant time; without it the route is off (404, saying so).
The alerts are stored in the request, before the 200 (flows/alerts.receive), so a 200 means they are durable;
when they cannot be stored the answer is 503 and Alertmanager sends them again, unless the database refuses
their values (422, saying why: sent again they would fail again). Text no database stores (NUL, a lone
surrogate) is made U+FFFD as the payload is read (metrics/alertmanager.safe_text): an odd character never drops
an alert. Storing is idempotent and never moves an alert back, so a replay or a late retry changes nothing. The
scheduler's leader reads them at each poll of the signals that match them, in whatever process that is.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DataError

from rollback_bot.flows import alerts
from rollback_bot.httpio import Rejected, StartResponse, answer, read_body
from rollback_bot.metrics.alertmanager import MAX_BODY, Payload, matching, parse
from rollback_bot.playbook.loader import LoadedPlaybook
from rollback_bot.store.database import Store
from rollback_bot.telemetry import ALERTS_RECEIVED

log = logging.getLogger(__name__)


class AlertmanagerEndpoint:
    """A WSGI app for POST /alertmanager."""

    def __init__(
        self,
        store: Store,
        token: str | None,
        playbooks: Mapping[str, LoadedPlaybook],
        now: Callable[[], datetime],
    ) -> None:
        self.store, self.now = store, now
        self._token = token.encode() if token else None
        self.signals = {
            f"{name}/{signal}": spec
            for name, loaded in playbooks.items()
            for signal, spec in alerts.specs(loaded.playbook).items()
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            payload = self._payload(environ)
        except Rejected as exc:
            log.warning("refused a request to /alertmanager with %s: %s", exc.status, exc.reason)
            extra = [("WWW-Authenticate", 'Bearer realm="rollback-bot"')] if exc.status == 401 else []
            return _answer(start_response, exc.status, {"error": exc.reason}, extra)
        try:
            with self.store.session() as s:
                stored = alerts.receive(s, payload, self.now())
                s.commit()
        except (DataError, UnicodeError) as exc:  # the database refuses these values: sent again, they fail again
            why = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
            log.error(
                "cannot store alerts from Alertmanager: the database refuses them (%s: %s)", type(exc).__name__, why
            )
            reason = f"the database refuses these alerts ({why}); sending them again will not help"
            return _answer(start_response, 422, {"error": reason})
        except Exception as exc:  # nothing was stored: a 5xx makes Alertmanager send the alerts again
            log.error("cannot store alerts from Alertmanager (%s: %s)", type(exc).__name__, str(exc)[:200])
            reason = f"cannot store the alerts right now ({type(exc).__name__}); send them again"
            return _answer(start_response, 503, {"error": reason})
        found = matching(self.signals, stored)
        for alert in stored:
            matched = any(alert in group for group in found.values())
            ALERTS_RECEIVED.labels(status=alert.status, matched=str(matched).lower()).inc()
            if not matched:
                log.info("alert %s from Alertmanager matches no alertmanager signal of any playbook", alert.describe())
        if payload.truncatedAlerts:
            log.warning("Alertmanager left out %d alerts of a group (max_alerts)", payload.truncatedAlerts)
        log.info(
            "took %d alert(s) from Alertmanager (%s, %s): %s",
            len(stored),
            payload.receiver or "no receiver name",
            payload.status,
            ", ".join(sorted(found)) or "matching no signal",
        )
        return _answer(start_response, 200, {"stored": len(stored), "signals": sorted(found)})

    def _payload(self, environ: dict[str, Any]) -> Payload:
        if self._token is None:
            raise Rejected(404, "POST /alertmanager is off: set ALERTMANAGER_TOKEN to take Alertmanager's webhook")
        scheme, _, given = str(environ.get("HTTP_AUTHORIZATION", "")).strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
            raise Rejected(401, "missing or wrong bearer token (http_config: authorization: credentials)")
        if not environ.get("CONTENT_LENGTH"):
            raise Rejected(411, "Content-Length is required")
        body = read_body(
            environ, limit=MAX_BODY, too_large=f", over {MAX_BODY}: set max_alerts on the webhook receiver"
        )
        length = int(environ["CONTENT_LENGTH"])
        if len(body) != length:
            raise Rejected(400, f"body cut short ({len(body)} of {length} bytes)")
        try:
            payload = parse(body)
        except ValueError as exc:
            raise Rejected(400, str(exc)) from None
        return payload


def _answer(
    start_response: StartResponse, status: int, doc: dict[str, Any], extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    return answer(start_response, status, json.dumps(doc).encode(), "application/json", extra)
