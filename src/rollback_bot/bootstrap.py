"""The composition root: settings -> store, engine dependencies, Slack client, sync, Bolt app, scheduler."""

from __future__ import annotations

import logging
import math
import signal
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from wsgiref.simple_server import WSGIServer

import requests
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from slack_bolt import App
from slack_sdk import WebClient
from sqlalchemy.engine import make_url

from rollback_bot import __version__, flows
from rollback_bot.alertmanager import AlertmanagerEndpoint
from rollback_bot.checking import load_checked, playbook_files
from rollback_bot.clock import Clock, SystemClock
from rollback_bot.config import Settings
from rollback_bot.flows.deps import Deps
from rollback_bot.flows.readings import prune
from rollback_bot.flows.watchdog import GroupStatus
from rollback_bot.httpio import serve_in_background
from rollback_bot.leadership import Leadership
from rollback_bot.playbook.loader import LoadedPlaybook, PlaybookInvalid
from rollback_bot.scheduler import build_scheduler, led, run_everything_now
from rollback_bot.slack.app import build_app
from rollback_bot.slack.clicks import FALLBACK, ClickDesk
from rollback_bot.slack.client import make_client
from rollback_bot.slack.directory import SlackDirectory, lookup_client
from rollback_bot.slack.http import WsgiApp, make_http_server, scheduler_app, wsgi_app
from rollback_bot.slack.runtime import BotIdentity, SlackRuntime
from rollback_bot.slack.sync import SlackSync
from rollback_bot.store import leader as store_leader
from rollback_bot.store.database import Store
from rollback_bot.telemetry import POLLING, PollFigures
from rollback_bot.worker import Worker, yield_cpu_to_requests

log = logging.getLogger(__name__)
SYNC_EVERY = 60  # seconds: the catch-up that makes a Slack outage lose nothing
WATCHDOG_SECONDS = 5.0  # how often a web process checks that the scheduler keeps polling


@dataclass
class Service:
    settings: Settings
    store: Store
    deps: Deps
    playbooks: dict[str, LoadedPlaybook]
    client: WebClient
    sync: SlackSync
    app: App
    desk: ClickDesk
    identity: BotIdentity = field(default_factory=BotIdentity)
    workers: list[Worker] = field(default_factory=list)

    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watchdog: threading.Thread | None = None
    leadership: Leadership | None = None  # in a process running the scheduler

    def start_watchdog(self) -> None:
        """In a process without the scheduler (gunicorn workers, --no-scheduler): if the scheduler stalls or
        dies, its own watchdog cannot say so; this one does (each change is recorded once across processes).
        It also works off clicks that nobody took for FALLBACK (the scheduler process normally does)."""
        if self._watchdog is not None:
            return

        def run() -> None:
            while not self._stopping.wait(WATCHDOG_SECONDS):
                try:
                    flows.check_polling(self.deps, list(self.playbooks.values()), self.started)
                except Exception:
                    log.exception("watchdog check failed; next run will try again")
                try:
                    self.desk.sweep(FALLBACK)
                except Exception:
                    log.exception("click sweep failed; next run will try again")

        self._watchdog = threading.Thread(target=run, name="watchdog", daemon=True)
        self._watchdog.start()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait for work queued after replies (tests, shutdown)."""
        for worker in self.workers:
            worker.drain(timeout)

    def close(self) -> None:
        self._stopping.set()
        self.desk.close()
        for worker in self.workers:
            worker.close()
        self.sync.close()
        self.deps.reader.close()
        self.store.close()

    def polling(self) -> list[GroupStatus]:
        return flows.polling_status(self.deps, list(self.playbooks.values()), self.started)

    def polling_behind(self) -> list[str]:
        """For /healthz: each poll group that is behind, in words."""
        return [status.describe() for status in self.polling() if status.unhealthy]

    def poll_figures(self) -> list[PollFigures]:
        return [
            PollFigures(
                st.group.playbook,
                st.group.name,
                st.age.total_seconds() if st.age is not None else math.inf,
                st.unhealthy,
                st.row.duration_s if st.row else 0.0,
            )
            for st in self.polling()
        ]

    def clicks_late(self) -> str | None:
        """For /healthz: clicks waiting too long to be worked off, in words (nothing works them off)."""
        return self.desk.late()

    def leading(self) -> dict[str, object]:
        """For the scheduler process's /healthz: leader or standby, and who leads."""
        if self.leadership is None:
            return {"role": "none"}
        token = self.leadership.leading()
        with self.store.session() as s:
            lease = store_leader.current(s)
        doc: dict[str, object] = {"role": "leader" if token is not None else "standby", "me": self.leadership.holder}
        if lease is not None:
            doc |= {"leader": lease.holder, "token": lease.token, "expires_at": lease.expires_at.isoformat()}
        ages = [st.age.total_seconds() for st in self.polling() if st.age is not None]
        if ages:  # how long since this deployment last polled (any group): the lag a leader keeps short
            doc["last_poll_age_s"] = round(min(ages), 1)
        if self.leadership.last_error:
            doc["error"] = self.leadership.last_error
        return doc

    def scheduler_wsgi(self) -> WsgiApp:
        POLLING.source = self.poll_figures
        return scheduler_app(self.store, self.leading, self.polling_behind)

    def wsgi(self) -> WsgiApp:
        POLLING.source = self.poll_figures
        secret = self.settings.slack_signing_secret
        token = self.settings.alertmanager_token
        alertmanager = AlertmanagerEndpoint(
            self.store, token.get_secret_value() if token else None, self.playbooks, self.deps.now
        )
        return wsgi_app(
            self.app,
            self.store,
            secret.get_secret_value() if secret else None,
            self.polling_behind,
            self.clicks_late,
            alertmanager,
        )


def load_playbooks(paths: list[str]) -> dict[str, LoadedPlaybook]:
    files = playbook_files(paths)
    if not files:
        raise PlaybookInvalid([])
    out: dict[str, LoadedPlaybook] = {}
    errors = []
    for path in files:
        try:
            loaded = load_checked(path)
        except PlaybookInvalid as exc:
            errors += exc.errors
            continue
        out[loaded.playbook.name] = loaded
    if errors:
        raise PlaybookInvalid(errors)
    return out


def build_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    http: requests.Session | None = None,
    background: bool = True,
    clicks_here: bool = True,
) -> Service:
    """`clicks_here`: this process works off the clicks it takes at once (False in web-only processes, whose
    clicks the scheduler process works off; see slack/clicks.py)."""
    playbooks = load_playbooks(settings.playbook_paths)
    store = Store(settings.database_url)
    token = settings.slack_bot_token.get_secret_value()
    client = make_client(token, settings.slack_api_url, retry_backoff=settings.slack_retry_backoff.total_seconds())
    clock = clock or SystemClock()
    directory = SlackDirectory(
        lookup_client(token, settings.slack_api_url),
        clock,
        ttl=settings.role_cache_ttl,
        max_stale=settings.role_cache_max_stale,
    )
    actions, replies = Worker("actions", 8), Worker("replies", 4)
    deps = Deps(
        store,
        clock,
        http or requests.Session(),
        directory,
        max_response_bytes=settings.max_response_bytes,
        background=actions,
    )
    sync = SlackSync(deps, client, playbooks, background=background)
    deps.notifier = sync
    identity = BotIdentity(user_id=settings.slack_bot_user_id)
    rt = SlackRuntime(deps, playbooks, client, sync, identity, replies)
    rt.desk = desk = ClickDesk(rt, here=clicks_here)
    app = build_app(rt)
    service = Service(settings, store, deps, playbooks, client, sync, app, desk, started=deps.now(), identity=identity)
    service.workers += [desk.worker, replies, actions]
    return service


def start_scheduler(service: Service) -> tuple[BackgroundScheduler, Leadership]:
    """Polling, the ladder, and the Slack catch-up. Any number of processes may run it: the one holding the
    scheduler lease acts, the others stand by (leadership.py)."""
    leadership = Leadership(service.store, service.deps.clock, period=service.settings.scheduler_lease)
    leadership.start()
    sched = build_scheduler(service.deps, list(service.playbooks.values()), leadership=leadership)
    leadership.on_gain.append(lambda token: run_everything_now(sched))
    service.leadership = leadership
    service.sync.leading = leadership.leading  # its leases are taken over by the next leader (slack/sync.py)
    sched.add_job(
        led(leadership, service.sync.sync_all),
        IntervalTrigger(seconds=SYNC_EVERY, timezone=UTC),
        id="slack-sync",
        name="post what Slack is missing",
        next_run_time=datetime.now(UTC),
    )
    sched.add_job(
        led(leadership, service.desk.forget_done),
        IntervalTrigger(hours=1, timezone=UTC),
        id="click-inbox-retention",
        name="drop clicks done a day ago",
        next_run_time=datetime.now(UTC),
    )
    sched.add_job(
        led(leadership, lambda: prune(service.deps, service.settings.readings_retention)),
        IntervalTrigger(hours=1, timezone=UTC),
        id="readings-retention",
        name="delete readings past READINGS_RETENTION",
        next_run_time=datetime.now(UTC),
    )
    sched.start()
    return sched, leadership


def _scheduler_port(service: Service, settings: Settings) -> WSGIServer | None:
    """The scheduler process's /healthz and /metrics. A port that cannot be had is said loudly, and the
    scheduler runs on: its work matters more than being watched."""
    where = f"http://{settings.rollback_host}:{settings.rollback_scheduler_port}"
    try:
        own = make_http_server(service.scheduler_wsgi(), settings.rollback_host, settings.rollback_scheduler_port)
    except OSError as exc:
        log.error(
            "scheduler process: cannot serve /healthz and /metrics at %s (%s); set ROLLBACK_SCHEDULER_PORT", where, exc
        )
        return None
    serve_in_background(own)
    log.info("scheduler process: %s (GET /healthz: leader or standby; GET /metrics)", where)
    return own


def check_slack(client: WebClient, identity: BotIdentity) -> None:
    """Say at start-up whether the token works, and learn the bot's own IDs; never fatal, and in the background
    (Slack may be down: the engine must run and people's clicks must be taken)."""

    def run() -> None:
        try:
            who = client.auth_test()
        except Exception as exc:
            log.warning("Slack is not reachable or the token is refused (%s); will keep retrying", exc)
            return
        identity.user_id = identity.user_id or who.get("user_id")
        identity.bot_id = identity.bot_id or who.get("bot_id")
        log.info("connected to Slack as %s in %s", who.get("user"), who.get("team"))

    threading.Thread(target=run, name="auth.test", daemon=True).start()


class CannotListen(Exception):
    """The web port cannot be had: said in one line before anything starts."""


def serve(settings: Settings, *, scheduler: bool = True, web: bool = True) -> None:
    if scheduler and not web:  # beside web workers: their 200s before working off their clicks (worker.py)
        yield_cpu_to_requests()
    service = build_service(settings, clicks_here=scheduler)
    server: WSGIServer | None = None
    if web and (not settings.socket_mode or settings.alertmanager_token is not None):  # bound before all else
        try:
            server = make_http_server(service.wsgi(), settings.rollback_host, settings.rollback_port)
        except OSError as exc:
            service.close()
            where = f"{settings.rollback_host}:{settings.rollback_port}"
            raise CannotListen(
                f"cannot start: cannot listen on {where} ({exc.strerror}); set ROLLBACK_HOST and ROLLBACK_PORT"
            ) from None
    log.info(
        "rollback-bot %s starting (%s): playbooks %s; database %s",
        __version__,
        "web and scheduler" if web and scheduler else "web only" if web else "scheduler only",
        ", ".join(f"{name} v{loaded.version}" for name, loaded in service.playbooks.items()),
        make_url(settings.database_url).render_as_string(hide_password=True),
    )
    check_slack(service.client, service.identity)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sched, leadership = start_scheduler(service) if scheduler else (None, None)
    if scheduler:  # clicks taken by web processes (gunicorn, --no-scheduler); this process's own at once
        service.desk.start_loop(older_than=timedelta(seconds=2) if web else timedelta(0))
    if web and not scheduler:
        service.start_watchdog()
    own: WSGIServer | None = None
    socket_handler = None
    try:
        if web and settings.socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            assert settings.slack_app_token is not None
            socket_handler = SocketModeHandler(service.app, settings.slack_app_token.get_secret_value())
            socket_handler.connect()
            log.info("Socket Mode connected")
        # Socket Mode needs no port for Slack, but Alertmanager's webhook does
        if server is not None:
            serve_in_background(server)
            routes = [] if settings.socket_mode else ["POST /slack/events"]
            routes += ["POST /alertmanager"] if settings.alertmanager_token is not None else []
            log.info(
                "listening on http://%s:%s (%s)",
                settings.rollback_host,
                settings.rollback_port,
                ", ".join([*routes, "GET /healthz", "GET /metrics"]),
            )
        if scheduler and not web and settings.rollback_scheduler_port:
            own = _scheduler_port(service, settings)
        stop.wait()
    finally:
        if server is not None:
            server.shutdown()
        if socket_handler is not None:
            socket_handler.close()
        if sched is not None:
            sched.shutdown(wait=True)
        if leadership is not None:
            leadership.stop()  # after the jobs: a standby takes over at once
        if own is not None:
            own.shutdown()
        service.close()
        log.info("rollback-bot stopped")
