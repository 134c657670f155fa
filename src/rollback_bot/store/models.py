"""SQLModel tables. State lives here, not in memory, so a restart resumes every open incident."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel

from rollback_bot.store.types import UTCDateTime


def _when(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


class Incident(SQLModel, table=True):
    __table_args__ = (
        # at most one open incident per playbook, even with several replicas racing
        Index(
            "uq_incident_open_per_playbook",
            "playbook",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    playbook: str = Field(index=True)
    playbook_version: str
    playbook_path: str
    playbook_text: str = Field(sa_column=Column(Text, nullable=False))
    service: str
    channel: str
    severity: str
    status: str = Field(default="open", index=True)
    trigger: str
    summary: str
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    opened_at: datetime = _when()
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = _when(default=None)
    step_index: int = -1  # the last ladder step announced (-1: none yet)
    resolved_at: datetime | None = _when(default=None)
    resolved_by: str | None = None
    held_by: str | None = None  # while set, no further action stage runs
    held_at: datetime | None = _when(default=None)
    slack_channel: str | None = None  # where the parent message lives (channel ID) ...
    slack_ts: str | None = None  # ... and its ts
    slack_cursor: int = 0  # the last timeline event posted to the thread
    # the post sent to Slack with no answer yet, set before the call: a thread event's id, or 0 for the
    # parent message. While set, the bot looks for it in Slack before posting it again.
    slack_pending: int | None = None
    slack_rendered: str = ""  # hash of the parent message as last sent, to skip needless chat.update
    slack_lease_until: datetime | None = _when(default=None)  # one syncer at a time, across processes
    # the fencing token of the leading scheduler that holds the lease (None: a web process): the next leader
    # takes a lease of an older token over at once (store/leader.py)
    slack_lease_token: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    exported_at: datetime | None = _when(default=None)  # the last timeline upload (one per few minutes) ...
    exported_by: str | None = None
    export_link: str | None = None  # ... and where it is, for those who ask again soon after


class Event(SQLModel, table=True):
    """The append-only timeline. Written only by `store.audit.record`; chained by hash (store/chain.py)."""

    __table_args__ = (UniqueConstraint("chain", "seq", name="uq_event_chain_seq"),)
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    playbook: str = Field(index=True)
    at: datetime = _when()
    kind: str = Field(index=True)
    actor: str | None = None
    role: str | None = None
    summary: str = Field(sa_column=Column(Text, nullable=False))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    chain: str = Field(default="", index=True)  # incident:<id> or playbook:<name>
    seq: int = 0  # position in the chain, from 1
    prev_hash: str = ""
    hash: str = ""


class ChainHead(SQLModel, table=True):
    """The newest event of each chain: deleting the last events is detectable, and appends serialise here."""

    __tablename__ = "chain_head"
    chain: str = Field(primary_key=True)
    seq: int = 0
    hash: str = ""


class Approval(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("incident_id", "action_id", "user_id", name="uq_approval_person"),
        UniqueConstraint("incident_id", "action_id", "role", "slot", name="uq_approval_slot"),
    )
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    action_id: str
    user_id: str
    role: str
    slot: int  # 0 for the first approval in a role, 1 for the second, ...
    at: datetime = _when()
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Reminder(SQLModel, table=True):
    """A reminder sent (or being sent); the unique key is what makes each one go out once."""

    __table_args__ = (UniqueConstraint("incident_id", "key", name="uq_reminder_key"),)
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    key: str  # ack:1, ack:2, step:3, ...
    at: datetime = _when()


class SlackCursor(SQLModel, table=True):
    """How far playbook-level events (no incident: signal lost, KPI hold) have been posted."""

    __tablename__ = "slack_cursor"
    playbook: str = Field(primary_key=True)
    last_event_id: int = 0
    pending: int | None = None  # the event sent to Slack with no answer yet (looked for before posting again)
    lease_until: datetime | None = _when(default=None)  # one syncer at a time, across processes
    lease_token: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))  # as Incident's


class ActionRun(SQLModel, table=True):
    """One stage of one action. The unique key is what makes an action run exactly once."""

    __table_args__ = (UniqueConstraint("incident_id", "action_id", "stage", name="uq_action_stage"),)
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    action_id: str
    stage: float
    idempotency_key: str = Field(unique=True)
    status: str = "running"  # running | succeeded | failed
    attempts: int = 0
    http_status: int | None = None
    response: str = ""
    started_at: datetime = _when()
    finished_at: datetime | None = _when(default=None)
    # the fencing token of the leading scheduler that sent it (None: another process): a stage left running by
    # an earlier leader is resent at once by the next, under the same Idempotency-Key
    token: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class ReadingRow(SQLModel, table=True):
    __tablename__ = "reading"
    __table_args__ = (
        Index("ix_reading_signal_at", "playbook", "signal", "at"),
        Index("ix_reading_playbook_at", "playbook", "at"),  # the newest readings of a whole playbook
    )
    id: int | None = Field(default=None, primary_key=True)
    playbook: str
    signal: str
    at: datetime = _when()
    value: float | None = None
    status: str = "ok"
    detail: str = ""


class TriggerStateRow(SQLModel, table=True):
    __tablename__ = "trigger_state"
    playbook: str = Field(primary_key=True)
    trigger: str = Field(primary_key=True)
    pending_since: datetime | None = _when(default=None)
    firing: bool = False
    gate: str | None = None
    nodata_since: datetime | None = _when(default=None)
    healthy_since: datetime | None = _when(default=None)
    outcomes: str = ""
    blind: bool = False


class SignalHealthRow(SQLModel, table=True):
    __tablename__ = "signal_health"
    playbook: str = Field(primary_key=True)
    signal: str = Field(primary_key=True)
    failures: int = 0
    lost: bool = False
    empties: int = 0
    silent: bool = False


class PollStateRow(SQLModel, table=True):
    """One poll group (a playbook's signals with one interval): when it last ran, and whether it is behind."""

    __tablename__ = "poll_state"
    playbook: str = Field(primary_key=True)
    poll_group: str = Field(primary_key=True)  # the interval, e.g. '30s'
    every_s: float = 0.0  # the interval in clock seconds, as really polled (a compressed clock has a floor)
    signals: int = 0
    started_at: datetime | None = _when(default=None)
    finished_at: datetime | None = _when(default=None)
    duration_s: float = 0.0  # real seconds the last poll took, reads and evaluation included
    behind: bool = False


class InboundRequest(SQLModel, table=True):
    """A signed request from Slack already taken: the same signature again (a replay) is ignored."""

    __tablename__ = "inbound_request"
    signature: str = Field(primary_key=True)
    at: datetime = _when(index=True)  # Slack's timestamp of the request; rows past its 5-minute window go


class Rollout(SQLModel, table=True):
    """A phased rollout of a candidate, guarded forward by the playbook's gate: which stage, since when, the
    gate's last verdict, and who held it."""

    __table_args__ = (
        # at most one rollout under way per playbook
        Index(
            "uq_rollout_active_per_playbook",
            "playbook",
            unique=True,
            sqlite_where=text("status IN ('running', 'held')"),
            postgresql_where=text("status IN ('running', 'held')"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    playbook: str = Field(index=True)
    playbook_version: str
    baseline: str
    candidate: str
    status: str = "running"  # running | held | rolled_back | complete
    stage: int = 0  # index into the playbook's rollout stages
    started_at: datetime = _when()
    started_by: str
    stage_started_at: datetime = _when()
    verdict: str = ""  # the gate's last verdict in this stage ('' before the first)
    verdict_at: datetime | None = _when(default=None)
    held_by: str | None = None  # a user ID, or 'gate' when the gate held it
    traffic: float | None = None  # the candidate's share last confirmed by the webhook
    incident_id: int | None = Field(default=None, foreign_key="incident.id")  # opened by a rollback
    finished_at: datetime | None = _when(default=None)
    slack_channel: str | None = None  # where the rollout's message lives (channel ID) ...
    slack_ts: str | None = None  # ... and its ts
    slack_rendered: str | None = None  # hash of the message as last sent, to skip needless chat.update
    slack_pending: bool = Field(default=False, sa_column_kwargs={"server_default": false()})  # post in flight
    looked_at: datetime | None = _when(default=None)  # the gate's last look (what the message shows is as of it)


class RolloutReading(SQLModel, table=True):
    """One reading of a rollout's signal for one version (and segment): what the gate compares."""

    __tablename__ = "rollout_reading"
    __table_args__ = (Index("ix_rollout_reading_at", "rollout_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id")
    signal: str
    version: str  # baseline | candidate
    segment: str = ""  # '' for the whole; 'urgency=high' for a segment
    at: datetime = _when()
    value: float | None = None
    status: str = "ok"
    detail: str = ""


class PanicSchedule(SQLModel, table=True):
    """Since when this database has kept a playbook's daily panic run: runs due before were nobody's to miss."""

    __tablename__ = "panic_schedule"
    playbook: str = Field(primary_key=True)
    since: datetime = _when()


class PanicRun(SQLModel, table=True):
    """One day's panic run: passed, failed or missed. The unique day is what records each run once; a failed
    run is a pre-launch alert until someone acknowledges it."""

    __tablename__ = "panic_run"
    __table_args__ = (UniqueConstraint("playbook", "day", name="uq_panic_run_day"),)
    id: int | None = Field(default=None, primary_key=True)
    playbook: str = Field(index=True)
    day: str  # the local date of the run, YYYY-MM-DD in the run's zone
    due_at: datetime = _when()  # the run's time, as an instant
    status: str  # passed | failed | missed
    at: datetime = _when()  # when it was recorded
    summary: str = Field(sa_column=Column(Text, nullable=False))  # the figures, what drifted, or 'not run'
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = _when(default=None)
    reminded_at: datetime | None = _when(default=None)  # the last reminder while unacknowledged


class ClickInbox(SQLModel, table=True):
    """A button click taken from Slack, written before Slack gets its 200 and worked off after: the click as it
    came (validated), who holds it now (a lease, so a process killed mid-click leaves it to another), and when
    it was done with the answer its clicker was given."""

    __tablename__ = "click_inbox"
    key: str = Field(primary_key=True)  # the request's signature (a replay conflicts here), or an envelope key
    received_at: datetime = _when()
    click: str = Field(sa_column=Column(Text, nullable=False))  # inbound.Click, as JSON
    claimed_by: str | None = None
    claimed_until: datetime | None = _when(default=None)
    attempts: int = 0
    done_at: datetime | None = _when(default=None, index=True)
    answer: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class LeaderLease(SQLModel, table=True):
    """Who leads the scheduler processes (polling, ladders, actions, the Slack sync) until when. The token grows
    at each change of holder: an acting write checks it in its own transaction (store/leader.py), so a paused
    old leader that wakes up cannot act."""

    __tablename__ = "leader_lease"
    name: str = Field(primary_key=True)
    holder: str
    token: int = Field(sa_column=Column(BigInteger, nullable=False))
    acquired_at: datetime = _when()
    expires_at: datetime = _when()


class AlertRow(SQLModel, table=True):
    """An alert Alertmanager sent to POST /alertmanager: its latest state, one row per fingerprint, written in the
    request before the 200. Polls read the alerts their signals match (metrics/alertmanager.py)."""

    __tablename__ = "alertmanager_alert"
    fingerprint: str = Field(primary_key=True)
    alertname: str = Field(default="", index=True)
    status: str  # firing | resolved
    starts_at: datetime = _when()
    ends_at: datetime | None = _when(default=None)
    received_at: datetime = _when()
    labels: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    annotations: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    generator_url: str = Field(default="", sa_column=Column(Text, nullable=False))
    receiver: str = ""
