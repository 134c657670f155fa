"""`gunicorn rollback_bot.wsgi:application`: the HTTP face for production. Web workers do not run the
scheduler; run `rollback-bot serve --scheduler-only` beside them (two or more, on any machines: one leads).
It also works off the clicks the workers take (they do it themselves for a click nobody took within 10 s)."""

from __future__ import annotations

import sys

from rollback_bot.bootstrap import build_service
from rollback_bot.config import ConfigError, load_settings
from rollback_bot.errors import DatabaseUnreachable
from rollback_bot.logs import LoggingProblem, configure
from rollback_bot.playbook.loader import PlaybookInvalid

try:
    configure()  # LOG_LEVEL (default INFO), LOG_FORMAT
    service = build_service(load_settings(), clicks_here=False)  # the scheduler process works them off
except PlaybookInvalid as exc:  # refuse to start, saying why in file:line form, without a traceback
    print("\n".join(map(str, exc.errors)) or "no playbooks found", file=sys.stderr)
    raise SystemExit(1) from None
except (ConfigError, DatabaseUnreachable, LoggingProblem) as exc:  # one line, no traceback
    print(exc, file=sys.stderr)
    raise SystemExit(2) from None
service.start_watchdog()  # says so in Slack when the scheduler process stalls or dies
application = service.wsgi()
