"""Logging as operators expect it: the lifecycle at INFO (store/audit.py logs every committed timeline event),
`LOG_LEVEL`, and JSON lines (`LOG_FORMAT=json`) for log shippers."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FIELDS = ("incident", "playbook", "kind", "event_id", "actor")  # a timeline event's, as JSON fields
# below DEBUG, what libraries say at INFO is noise (APScheduler: each job run, every second); their warnings stay.
# slack_sdk logs an ERROR for each attempt of a call; the bot says once what failed and what it does next.
QUIET = {"apscheduler": logging.WARNING, "alembic": logging.WARNING, "slack_sdk": logging.WARNING}
QUIET_SLACK_ATTEMPTS = ("slack_sdk.web.base_client", logging.CRITICAL)


class LoggingProblem(ValueError):
    pass


class Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a line is logged: a handler made once must not keep a stream that
    was swapped and closed since (pytest's capture; a daemon redirecting its output)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.__init__ sets it; sys.stderr is always used
        pass


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, a timeline event's fields, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if (value := getattr(record, name, None)) is not None:
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def level_from_env(default: int) -> int:
    name = os.environ.get("LOG_LEVEL", "").strip().upper()
    if not name:
        return default
    if name not in LEVELS:
        raise LoggingProblem(f"LOG_LEVEL={name.lower()} is not a level: use one of {', '.join(LEVELS)}")
    return int(getattr(logging, name))


def formatter_from_env() -> logging.Formatter:
    name = os.environ.get("LOG_FORMAT", "").strip().lower() or "text"
    if name not in ("text", "json"):
        raise LoggingProblem(f"LOG_FORMAT={name} is not a format: use text (the default) or json")
    return JsonLines() if name == "json" else logging.Formatter(TEXT)


def configure(default: int = logging.INFO, *, verbose: bool = False) -> None:
    """Log to stderr at LOG_LEVEL (else `default`; DEBUG when verbose) in LOG_FORMAT. Raises LoggingProblem."""
    level = logging.DEBUG if verbose else level_from_env(default)
    handler = Stderr()
    handler.setFormatter(formatter_from_env())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet = dict(QUIET, **dict([QUIET_SLACK_ATTEMPTS])) if level > logging.DEBUG else {}
    for name in (*QUIET, QUIET_SLACK_ATTEMPTS[0]):
        logging.getLogger(name).setLevel(quiet.get(name, logging.NOTSET))
