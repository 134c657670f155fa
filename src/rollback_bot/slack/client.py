"""The Slack Web API client: configurable base URL, retries on rate limits, and on connection and server
errors only where a repeat cannot show something twice."""

from __future__ import annotations

import random
import socket
from urllib.error import URLError
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.jitter import Jitter
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

DEFAULT_API_URL = "https://slack.com/api/"
# Calls that make something people see. After a lost answer or a 5xx Slack may have acted, and a blind
# resend would show it twice: the caller decides (slack/sync.py looks for its own post first). A 429 is
# retried for every method: Slack did nothing. Reads and chat.update are idempotent and retried.
NOT_REPEATABLE = frozenset(
    {
        "chat.postMessage",
        "chat.postEphemeral",
        "chat.scheduleMessage",
        "chat.meMessage",
        "files.completeUploadExternal",
        "files.upload",
    }
)


def method_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


def never_reached_slack(error: Exception | None) -> bool:
    """The connection was never made (refused, name not resolved): nothing was sent, a retry is safe."""
    return isinstance(error, URLError) and isinstance(error.reason, (ConnectionRefusedError, socket.gaierror))


class UnlessSlackMayHaveActed(RetryHandler):
    """`inner`'s retries, except for a call in NOT_REPEATABLE that may have reached Slack."""

    def __init__(self, inner: RetryHandler) -> None:
        super().__init__(inner.max_retry_count, inner.interval_calculator)
        self.inner = inner

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if method_of(request.url) in NOT_REPEATABLE and not never_reached_slack(error):
            return False
        return self.inner.can_retry(state=state, request=request, response=response, error=error)

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        self.inner.prepare_for_next_attempt(state=state, request=request, response=response, error=error)


RETRY_BACKOFF = 0.5  # s: slack_sdk's own factor (0.5, 1 s, ... plus jitter between attempts)


class ScaledJitter(Jitter):
    """Up to twice the backoff factor of random jitter: slack_sdk's own adds up to 1 s whatever the factor
    (with its 0.5 s factor, the same range)."""

    def __init__(self, backoff: float) -> None:
        self.scale = 2 * backoff

    def recalculate(self, duration: float) -> float:
        return duration + random.random() * self.scale


def make_client(
    token: str, base_url: str = DEFAULT_API_URL, timeout: int = 10, retry_backoff: float = RETRY_BACKOFF
) -> WebClient:
    """slack_sdk retries only connection errors once by default; also honour 429 Retry-After and retry 5xx.
    `retry_backoff` scales the wait between attempts after a connection error or a 5xx (SLACK_RETRY_BACKOFF)."""
    interval = BackoffRetryIntervalCalculator(backoff_factor=retry_backoff, jitter=ScaledJitter(retry_backoff))
    return WebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=timeout,
        retry_handlers=[
            UnlessSlackMayHaveActed(ConnectionErrorRetryHandler(max_retry_count=2, interval_calculator=interval)),
            RateLimitErrorRetryHandler(max_retry_count=3),
            UnlessSlackMayHaveActed(ServerErrorRetryHandler(max_retry_count=2, interval_calculator=interval)),
        ],
    )
