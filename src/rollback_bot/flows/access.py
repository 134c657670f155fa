"""Who may read what: the status of incidents, their timeline, a playbook, and who may add notes. By default
only people holding one of the playbook's roles, asking in the playbook's channel (or the incident's) or by
direct message. Refusals are recorded (`access.denied`, kept out of Slack so a refused person cannot make the
bot spam a channel); a role that cannot be checked is recorded as such (`role.unknown`)."""

from __future__ import annotations

from dataclasses import dataclass

from rollback_bot.directory import check_roles
from rollback_bot.flows.deps import Deps, Outcome
from rollback_bot.playbook.models import Playbook
from rollback_bot.store import audit
from rollback_bot.store.models import Incident


@dataclass(frozen=True)
class Asker:
    """Who asks, and where (a Slack channel ID and name; a DM's ID starts with D)."""

    user: str
    channel_id: str = ""
    channel_name: str = ""

    @property
    def in_dm(self) -> bool:
        return self.channel_id.startswith("D") or self.channel_name == "directmessage"  # not group DMs


def in_place(pb: Playbook, asker: Asker, incident: Incident | None = None) -> bool:
    if asker.in_dm:
        return True
    names = {pb.channel, pb.channel.lstrip("#")}
    if asker.channel_id in names or asker.channel_name in names:
        return True
    return incident is not None and bool(incident.slack_channel) and incident.slack_channel == asker.channel_id


def may_read(deps: Deps, pb: Playbook, asker: Asker, verb: str, incident: Incident | None = None) -> Outcome | None:
    """None when `asker` may `verb`; otherwise the recorded refusal, in words for them."""
    check = check_roles(pb, asker.user, deps.directory)
    place = in_place(pb, asker, incident)
    if check.held and place:
        return None
    name = deps.directory.display_name(asker.user)
    who = f"{name} ({asker.user})"
    if not check.held and check.unknown:
        kind, summary = "role.unknown", f"could not check whether {who} may {verb} {pb.name}: {check.reason}"
        extra = {"reason": check.reason}
        answer = f"I cannot check your role right now ({check.reason}); try again in a minute."
    elif not check.held:
        needs = "a role in the playbook"
        kind, summary, extra = "access.denied", f"{who} may not {verb} {pb.name} here: needs {needs}", {"needs": needs}
        roles = ", ".join(pb.roles) or "none"
        answer = f"Only people holding a role of playbook {pb.name} ({roles}) may {verb} it."
    else:
        needs = f"to ask in {pb.channel} or by direct message"
        kind, summary, extra = "access.denied", f"{who} may not {verb} {pb.name} here: needs {needs}", {"needs": needs}
        answer = f"Ask in {pb.channel} or by direct message to {verb} {pb.name}."
    with deps.store.session() as s:
        audit.record(
            s,
            playbook=pb.name,
            incident_id=incident.id if incident is not None else None,
            kind=kind,
            at=deps.now(),
            actor=asker.user,
            summary=summary,
            details={"action": verb, "channel": asker.channel_id, "channel_name": asker.channel_name, "name": name}
            | extra,
        )
        s.commit()
    return Outcome(False, answer)
