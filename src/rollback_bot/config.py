"""Settings from the environment. The bot refuses to start, saying which and why, when a required setting
is missing or still a placeholder."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rollback_bot.checking import default_playbooks
from rollback_bot.metrics.fetch import DEFAULT_MAX_BYTES
from rollback_bot.playbook.durations import parse_duration
from rollback_bot.playbook.loader import BOUNDS, KINDS, bound_in_words
from rollback_bot.slack.client import DEFAULT_API_URL

_PLACEHOLDER = re.compile(r"(^$|your|change.?me|replace|placeholder|example|xxx|\.\.\.|<|>|^x+$)", re.I)


PLACEHOLDER_HOSTS = {"db.internal", "example.com", "db.example.com"}  # bot/env.example's
MODE_PROBLEM = (
    "set SLACK_SIGNING_SECRET for HTTP mode (Slack calls POST /slack/events), or SLACK_APP_TOKEN for Socket Mode"
)


class ConfigError(Exception):
    pass


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    slack_bot_token: SecretStr
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = DEFAULT_API_URL
    # the wait between attempts of a Slack call after a connection error or a 5xx grows from this (0.5 s, 1 s)
    slack_retry_backoff: Annotated[timedelta, BeforeValidator(parse_duration)] = timedelta(milliseconds=500)
    database_url: str = "sqlite:///rollback-bot.db"
    # files or folders, separated by commas; unset: playbooks/ if here, else this folder (after `rollback-bot init`)
    rollback_playbooks: str = Field(default_factory=default_playbooks)
    readings_retention: Annotated[timedelta, BeforeValidator(parse_duration)] = timedelta(days=30)
    rollback_host: str = "127.0.0.1"
    rollback_port: int = Field(default=3000, ge=1, le=65535)
    # `serve --scheduler-only`: GET /healthz (leader or standby, polling) and GET /metrics on this port; 0: none
    rollback_scheduler_port: int = Field(default=3001, ge=0, le=65535)
    # the scheduler lease: the leader renews it; a standby takes over once it runs out (leadership.py)
    scheduler_lease: Annotated[timedelta, BeforeValidator(parse_duration)] = timedelta(seconds=10)
    max_response_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024)  # a metric answer larger is a failed read
    # role membership from Slack user groups: re-read after ROLE_CACHE_TTL; while Slack cannot answer, a copy
    # up to ROLE_CACHE_MAX_STALE old is used, and past that people are told their role cannot be checked
    role_cache_ttl: Annotated[timedelta, BeforeValidator(parse_duration)] = timedelta(seconds=30)
    role_cache_max_stale: Annotated[timedelta, BeforeValidator(parse_duration)] = timedelta(minutes=10)
    # POST /alertmanager takes Alertmanager's webhook with `Authorization: Bearer <this>`; unset: the route is off
    alertmanager_token: SecretStr | None = None
    slack_bot_user_id: str | None = None  # the bot's own user ID; without it, learned from auth.test when Slack answers

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        if _PLACEHOLDER.search(raw.removeprefix("xoxb-")) or not raw.startswith("xoxb-"):
            raise ValueError("must be the bot token (xoxb-...) from your Slack app's 'OAuth & Permissions' page")
        return v

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, v: SecretStr | None) -> SecretStr | None:
        raw = v.get_secret_value() if v is not None else None
        if raw is not None and (not raw.startswith("xapp-") or _PLACEHOLDER.search(raw.removeprefix("xapp-"))):
            raise ValueError("must be an app-level token (xapp-...) with connections:write, or unset for HTTP mode")
        return v

    @field_validator("slack_signing_secret")
    @classmethod
    def _secret(cls, v: SecretStr | None) -> SecretStr | None:
        raw = v.get_secret_value() if v is not None else None
        if raw is not None and (_PLACEHOLDER.search(raw) or len(raw) < 16):
            raise ValueError("must be the signing secret from your Slack app's 'Basic Information' page")
        return v

    @field_validator("alertmanager_token")
    @classmethod
    def _alertmanager_token(cls, v: SecretStr | None) -> SecretStr | None:
        raw = v.get_secret_value() if v is not None else None
        if raw is not None and (_PLACEHOLDER.search(raw) or len(raw) < 16 or raw != raw.strip() or " " in raw):
            raise ValueError(
                "must be a random token of 16 or more characters without spaces (e.g. `openssl rand -hex 32`), "
                "the same as the webhook receiver's http_config.authorization.credentials; or unset to turn "
                "POST /alertmanager off"
            )
        return v

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/]+", v):
            raise ValueError("must be an http(s) URL, e.g. https://slack.com/api/")
        return v

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        host = re.search(r"@([^/:?]+)", v)
        if host and host.group(1) in PLACEHOLDER_HOSTS:
            raise ValueError(f"names the example host {host.group(1)!r}: set it to your database's URL")
        return v

    @field_validator("rollback_playbooks")
    @classmethod
    def _playbooks(cls, v: str) -> str:
        missing = [p.strip() for p in v.split(",") if p.strip() and not os.path.exists(p.strip())]
        if missing:
            raise ValueError(
                f"names {', '.join(missing)}, which does not exist: point it at your playbook files or folders "
                "(`rollback-bot init DIR` writes a starter playbook)"
            )
        return v

    @model_validator(mode="after")
    def _mode(self) -> Settings:
        if self.slack_app_token is None and self.slack_signing_secret is None:
            raise ValueError(MODE_PROBLEM)
        return self

    @property
    def playbook_paths(self) -> list[str]:
        return [p.strip() for p in self.rollback_playbooks.split(",") if p.strip()]

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None


def load_settings() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper() or "configuration"
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "is not set"
            elif err["type"] in KINDS:
                msg = f"={err.get('input')}: expected {KINDS[err['type']]}"
            elif err["type"] in BOUNDS:  # in the playbook's words
                msg = f"={err.get('input')}: {bound_in_words(err)}"
            problems.append(msg if name == "configuration" else f"{name}{msg}" if msg[0] == "=" else f"{name} {msg}")
        # the model-wide check does not run when a field failed; say it anyway, so one pass fixes all
        if (
            not any(os.environ.get(v) for v in ("SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"))
            and MODE_PROBLEM not in problems
        ):
            problems.append(MODE_PROBLEM)
        raise ConfigError("cannot start: " + "; ".join(problems) + " (see bot/env.example)") from None
