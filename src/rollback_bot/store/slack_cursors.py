"""The Slack outbox's bookkeeping: how far each incident's thread and each playbook's channel got, the post
in flight (recorded before Slack is called, cleared with the cursor's advance), and the sync leases."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select, update

from rollback_bot.store.database import insert_for
from rollback_bot.store.models import Event, Incident, Rollout, SlackCursor


def ensure(session: Session, *, playbook: str) -> None:
    """A playbook's first cursor starts after the events already stored (history is not replayed); an
    existing cursor is kept, so events recorded while Slack or the bot was away are still posted."""
    newest = session.exec(select(Event.id).order_by(col(Event.id).desc()).limit(1)).first() or 0
    stmt = insert_for(session)(SlackCursor).values(playbook=playbook, last_event_id=newest)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["playbook"]))


def to_sync(session: Session, *, since: datetime) -> list[int]:
    """Incidents the catch-up looks at: open ones, ones without a parent message, and recently resolved."""
    return [
        i.id
        for i in session.exec(select(Incident).order_by(col(Incident.id)))
        if i.id is not None and (i.status == "open" or i.slack_ts is None or (i.resolved_at or since) > since)
    ]


# --- one incident's thread ----------------------------------------------------------------------------
def _free(until: Any, held_by: Any, *, now: datetime, token: int | None) -> Any:
    """A sync lease may be taken when it is free or has run out, or, by the leading scheduler (`token`), when
    an earlier leader holds it: that one stopped acting before this one started (leadership.py)."""
    free = col(until).is_(None) | (col(until) < now)
    if token is None:
        return free
    return free | (col(held_by).is_not(None) & (col(held_by) < token))


def take_incident_lease(
    session: Session, *, incident_id: int, now: datetime, until: datetime, token: int | None = None
) -> bool:
    taken = session.exec(
        update(Incident)
        .where(
            col(Incident.id) == incident_id,
            _free(Incident.slack_lease_until, Incident.slack_lease_token, now=now, token=token),
        )
        .values(slack_lease_until=until, slack_lease_token=token)
    )
    return bool(taken.rowcount == 1)


def release_incident_lease(session: Session, *, incident_id: int, token: int | None = None) -> None:
    """Give the lease back, unless another leader took it over meanwhile."""
    session.exec(
        update(Incident)
        .where(col(Incident.id) == incident_id, col(Incident.slack_lease_token).is_not_distinct_from(token))
        .values(slack_lease_until=None, slack_lease_token=None)
    )


def thread_events(session: Session, *, incident_id: int, after: int) -> list[Event]:
    return list(
        session.exec(
            select(Event).where(Event.incident_id == incident_id, col(Event.id) > after).order_by(col(Event.id))
        )
    )


def incident_behind(session: Session, *, incident_id: int) -> bool:
    """Whether the incident has events its thread's cursor has not passed."""
    cursor = select(Incident.slack_cursor).where(col(Incident.id) == incident_id).scalar_subquery()
    stmt = select(col(Event.id)).where(Event.incident_id == incident_id, col(Event.id) > cursor)
    return session.exec(stmt.limit(1)).first() is not None


def mark_incident(session: Session, *, incident_id: int, pending: int | None) -> None:
    """Record the post about to be sent (None: the last one was refused, nothing is in flight)."""
    session.exec(update(Incident).where(col(Incident.id) == incident_id).values(slack_pending=pending))


def confirm_parent(session: Session, *, incident_id: int, channel: str, ts: str, rendered: str) -> None:
    """The parent message exists: where it is and what it shows, and nothing in flight any more."""
    session.exec(
        update(Incident)
        .where(col(Incident.id) == incident_id)
        .values(slack_channel=channel, slack_ts=ts, slack_rendered=rendered, slack_pending=None)
    )


def confirm_thread(session: Session, *, incident_id: int, event_id: int) -> None:
    """The thread has every event up to `event_id`; the cursor never moves back."""
    session.exec(
        update(Incident)
        .where(col(Incident.id) == incident_id, col(Incident.slack_cursor) < event_id)
        .values(slack_cursor=event_id, slack_pending=None)
    )


def rendered(session: Session, *, incident_id: int, fingerprint: str) -> None:
    session.exec(update(Incident).where(col(Incident.id) == incident_id).values(slack_rendered=fingerprint))


# --- a playbook's channel (events without an incident) ----------------------------------------------------
def take_channel_lease(
    session: Session, *, playbook: str, now: datetime, until: datetime, token: int | None = None
) -> SlackCursor | None:
    """The playbook's cursor if this syncer may post to its channel now, else None."""
    taken = session.exec(
        update(SlackCursor)
        .where(
            col(SlackCursor.playbook) == playbook,
            _free(SlackCursor.lease_until, SlackCursor.lease_token, now=now, token=token),
        )
        .values(lease_until=until, lease_token=token)
    )
    return session.get(SlackCursor, playbook) if taken.rowcount == 1 else None


def release_channel_lease(session: Session, *, playbook: str, token: int | None = None) -> None:
    session.exec(
        update(SlackCursor)
        .where(col(SlackCursor.playbook) == playbook, col(SlackCursor.lease_token).is_not_distinct_from(token))
        .values(lease_until=None, lease_token=None)
    )


def channel_events(session: Session, *, playbook: str, after: int) -> list[Event]:
    return list(
        session.exec(
            select(Event)
            .where(Event.playbook == playbook, col(Event.incident_id).is_(None), col(Event.id) > after)
            .order_by(col(Event.id))
        )
    )


def channel_behind(session: Session, *, playbook: str) -> bool:
    """Whether the playbook has channel events its cursor has not passed."""
    cursor = select(SlackCursor.last_event_id).where(col(SlackCursor.playbook) == playbook).scalar_subquery()
    stmt = select(col(Event.id)).where(
        Event.playbook == playbook, col(Event.incident_id).is_(None), col(Event.id) > cursor
    )
    return session.exec(stmt.limit(1)).first() is not None


def mark_channel(session: Session, *, playbook: str, pending: int | None) -> None:
    session.exec(update(SlackCursor).where(col(SlackCursor.playbook) == playbook).values(pending=pending))


def confirm_channel(session: Session, *, playbook: str, event_id: int) -> None:
    session.exec(
        update(SlackCursor)
        .where(col(SlackCursor.playbook) == playbook, col(SlackCursor.last_event_id) < event_id)
        .values(last_event_id=event_id, pending=None)
    )


def repeats_a_refusal(session: Session, *, event: Event, within: timedelta) -> bool:
    """Whether the same person was refused the same way on the same incident shortly before: such repeats
    stay in the timeline but are not posted again (clicking a button over and over must not flood a thread)."""
    stmt = select(col(Event.id)).where(
        Event.incident_id == event.incident_id,
        Event.playbook == event.playbook,
        Event.kind == event.kind,
        Event.actor == event.actor,
        col(Event.id) < event.id,
        col(Event.at) > event.at - within,
    )
    return session.exec(stmt.limit(1)).first() is not None


# --- a rollout's message (in its playbook's channel, under the channel lease) ------------------------------
def rollouts_to_show(session: Session, *, playbook: str, since: datetime) -> list[Rollout]:
    """Rollouts whose message may need posting or updating: under way, or finished since `since`."""
    stmt = select(Rollout).where(
        Rollout.playbook == playbook,
        col(Rollout.status).in_(("running", "held")) | (col(Rollout.finished_at) > since),
    )
    return list(session.exec(stmt.order_by(col(Rollout.id))))


def mark_rollout(session: Session, *, rollout_id: int, pending: bool) -> None:
    """The rollout's message is about to be posted (True), or its post was refused (False)."""
    session.exec(update(Rollout).where(col(Rollout.id) == rollout_id).values(slack_pending=pending))


def confirm_rollout(session: Session, *, rollout_id: int, channel: str, ts: str, rendered: str) -> None:
    session.exec(
        update(Rollout)
        .where(col(Rollout.id) == rollout_id)
        .values(slack_channel=channel, slack_ts=ts, slack_rendered=rendered, slack_pending=False)
    )


def rollout_rendered(session: Session, *, rollout_id: int, fingerprint: str) -> None:
    session.exec(update(Rollout).where(col(Rollout.id) == rollout_id).values(slack_rendered=fingerprint))
