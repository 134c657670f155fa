"""`gunicorn rollback_bot.wsgi:application`: the HTTP face for production. Web workers do not run the
scheduler; run `rollback-bot serve --scheduler-only` as exactly one other process."""

from __future__ import annotations

from rollback_bot.bootstrap import build_service
from rollback_bot.config import load_settings

service = build_service(load_settings())
service.start_watchdog()  # says so in Slack when the scheduler process stalls or dies
application = service.wsgi()
