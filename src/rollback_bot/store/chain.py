"""The hash chain that makes the timeline tamper-evident.

Each event belongs to one chain (its incident's, or its playbook's for events with no incident), has a
sequence number in it, and carries sha256(its content + the previous event's hash). Editing, deleting or
reordering events breaks the chain at the first event affected; the chain head (last seq and hash) catches
deleting the newest events. Exports carry the final hash, so a copy kept elsewhere anchors it.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

GENESIS = "0" * 64


def chain_of(incident_id: int | None, playbook: str) -> str:
    return incident_chain(incident_id) if incident_id is not None else f"playbook:{playbook}"


def incident_chain(incident_id: int) -> str:
    """The chain of an incident's events: every event recorded with that incident_id, and only those."""
    return f"incident:{incident_id}"


def json_safe(value: Any) -> Any:
    """JSON that every database accepts: non-finite floats become the strings Prometheus uses."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def hash_of(ev: Any) -> str:
    """The hash an event (anything with the Event table's fields) must carry."""
    return event_hash(
        chain=ev.chain,
        seq=ev.seq,
        prev_hash=ev.prev_hash,
        incident_id=ev.incident_id,
        playbook=ev.playbook,
        at=ev.at,
        kind=ev.kind,
        actor=ev.actor,
        role=ev.role,
        summary=ev.summary,
        details=ev.details,
    )


def event_hash(
    *,
    chain: str,
    seq: int,
    prev_hash: str,
    incident_id: int | None,
    playbook: str,
    at: datetime,
    kind: str,
    actor: str | None,
    role: str | None,
    summary: str,
    details: dict[str, Any],
) -> str:
    return content_hash(
        chain=chain,
        seq=seq,
        prev_hash=prev_hash,
        incident_id=incident_id,
        playbook=playbook,
        at_iso=at.astimezone(UTC).isoformat(timespec="microseconds"),
        kind=kind,
        actor=actor,
        role=role,
        summary=summary,
        details=details,
    )


def content_hash(
    *,
    chain: str,
    seq: int,
    prev_hash: str,
    incident_id: int | None,
    playbook: str,
    at_iso: str,
    kind: str,
    actor: str | None,
    role: str | None,
    summary: str,
    details: Any = None,
    details_json: str | None = None,
) -> str:
    """The hash over an event's content, its time already as ISO UTC with microseconds: sha256 of
    json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False), with the keys written out
    in that sorted order here (a quarter of the cost of a verify was json sorting the same keys again).
    `details_json`: the details as canonical_json already wrote them (as the database stores them), instead
    of `details`."""
    q, details_text = encode_basestring, _dumps(details) if details_json is None else details_json
    try:  # the text content of an event has (str, and int or None where numbers): written out in one piece
        data = (
            f'{{"actor":{"null" if actor is None else q(actor)},"at":{q(at_iso)},"chain":{q(chain)},'
            f'"details":{details_text},"incident":{"null" if incident_id is None else _int(incident_id)},'
            f'"kind":{q(kind)},"playbook":{q(playbook)},"prev":{q(prev_hash)},'
            f'"role":{"null" if role is None else q(role)},"seq":{_int(seq)},"summary":{q(summary)}}}'
        )
    except TypeError:  # something else where text belongs (encode_basestring takes str only): as json writes it
        data = "".join(
            (
                '{"actor":',
                _text(actor),
                ',"at":',
                _str(at_iso),
                ',"chain":',
                _str(chain),
                ',"details":',
                details_text,
                ',"incident":',
                "null" if incident_id is None else _int(incident_id),
                ',"kind":',
                _str(kind),
                ',"playbook":',
                _str(playbook),
                ',"prev":',
                _str(prev_hash),
                ',"role":',
                _text(role),
                ',"seq":',
                _int(seq),
                ',"summary":',
                _str(summary),
                "}",
            )
        )
    return hashlib.sha256(data.encode()).hexdigest()


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """JSON as the hash has it (sorted keys, no spaces, UTF-8 as is). The database writes its JSON columns so
    (store/database.py): a verify can hash an event's stored details without parsing and writing them again."""
    return _dumps(value)


def _dumps(value: Any) -> str:
    """json.dumps as above. Its C encoder is made once here (JSONEncoder.encode makes one per call, which
    cost as much as the encoding of a small event)."""
    if _C_ENCODER is None or type(value) is not dict:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODER(value, 0))


def _str(value: Any) -> str:
    return encode_basestring(value) if type(value) is str else _ENCODER.encode(value)


def _int(value: Any) -> str:
    return int.__repr__(value) if type(value) is int else _ENCODER.encode(value)


def _text(value: str | None) -> str:
    return "null" if value is None else _str(value)


# no circular check (markers None): the content comes from JSON or from json_safe, never a cycle
_C_ENCODER = (
    c_make_encoder(None, _ENCODER.default, encode_basestring, None, ":", ",", True, False, True)
    if c_make_encoder is not None
    else None
)
