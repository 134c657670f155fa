"""gunicorn for the HTTP face: `gunicorn -c bot/gunicorn.conf.py`. Web workers only; run the scheduler as
exactly one other process: `rollback-bot serve --scheduler-only` (see rollback-bot-scheduler.service)."""

import os

wsgi_app = "rollback_bot.wsgi:application"
bind = os.environ.get("ROLLBACK_BIND", "0.0.0.0:3000")
workers = int(os.environ.get("ROLLBACK_WORKERS", "2"))
worker_class = "gthread"  # Bolt acks at once and finishes a click's work on a thread after the response
threads = int(os.environ.get("ROLLBACK_THREADS", "8"))
timeout = 30
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
