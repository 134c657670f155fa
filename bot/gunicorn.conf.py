"""gunicorn for the HTTP face: `gunicorn -c bot/gunicorn.conf.py`. Web workers only; run the scheduler as
other processes: `rollback-bot serve --scheduler-only` (see rollback-bot-scheduler.service), two or more on
PostgreSQL (one leads, the others stand by)."""

import os

wsgi_app = "rollback_bot.wsgi:application"
bind = os.environ.get("ROLLBACK_BIND", "0.0.0.0:3000")
workers = int(os.environ.get("ROLLBACK_WORKERS", "2"))
worker_class = "gthread"  # a click is recorded before its 200; slow work goes to the bot's own worker threads
backlog = 2048  # a burst of clicks queues in the kernel instead of waiting on SYN retries
threads = int(os.environ.get("ROLLBACK_THREADS", "8"))
timeout = 30
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
