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


# /metrics adds up every worker's counters (prometheus_client's multiprocess mode): the workers write them to
# files in this folder, emptied when gunicorn starts; a worker's files are marked dead when it exits. Set it
# empty to have each worker answer for itself.
_METRICS = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", f"/tmp/rollback-bot-metrics-{os.getpid()}")

# imported here, once, in the master (after the folder is set: the workers forked from it write their files
# there): child_exit runs in the SIGCHLD handler, and two workers exiting together would otherwise both import
# it, the second inside the first's import ("partially initialized module"), which took the master down
from prometheus_client import multiprocess  # noqa: E402


def on_starting(server: object) -> None:
    import shutil

    if not _METRICS:
        return
    shutil.rmtree(_METRICS, ignore_errors=True)
    os.makedirs(_METRICS, exist_ok=True)


def child_exit(server: object, worker: object) -> None:
    if not _METRICS:
        return
    try:
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
    except Exception as exc:  # a hook must never take the master down; the figures of a dead worker stay
        server.log.warning("could not mark worker %s's metrics dead: %s", worker.pid, exc)  # type: ignore[attr-defined]
