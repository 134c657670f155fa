"""`gunicorn rollback_bot.wsgi:application`: the HTTP face for production. Web workers do not run the
scheduler; run `rollback-bot serve --scheduler-only` as exactly one other process."""

from __future__ import annotations

from rollback_bot.bootstrap import build_service
from rollback_bot.config import load_settings
from rollback_bot.slack.http import wsgi_app

service = build_service(load_settings())
application = wsgi_app(service.app, service.store)
