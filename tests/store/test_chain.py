"""The timeline is tamper-evident: edits, deletions and reordering are caught and named."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy
from alembic import command
from sqlmodel import select

from rollback_bot.store import Event, Store
from rollback_bot.store.audit import record
from rollback_bot.store.database import alembic_config, make_engine
from rollback_bot.store.verify import chains, verify_chain

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def fill(store: Store, n: int = 6) -> list[int]:
    ids = []
    with store.session() as s:
        for i in range(n):
            ev = record(
                s,
                playbook="p",
                incident_id=None,
                kind="note",
                at=T0 + timedelta(minutes=i),
                summary=f"note {i}",
                actor="U1",
                details={"text": f"t{i}", "value": float("inf")},
            )
            ids.append(ev.id or 0)
        s.commit()
    return ids


def report(store: Store) -> str:
    with store.session() as s:
        return str(verify_chain(s, "playbook:p"))


def sql(store: Store, statement: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(sqlalchemy.text(statement), params)


def test_an_untouched_chain_verifies(store: Store) -> None:
    fill(store)
    with store.session() as s:
        result = verify_chain(s, "playbook:p")
        events = s.exec(select(Event).order_by(Event.seq)).all()  # type: ignore[arg-type]
    assert result.ok and result.events == 6 and result.final_hash == events[-1].hash
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[0].details["value"] == "+Inf"  # stored as JSON every database accepts


def test_an_edited_event_is_named(store: Store) -> None:
    ids = fill(store)
    sql(store, "update event set summary = 'nothing happened' where id = :id", id=ids[3])
    assert f"event #{ids[3]} (no. 4 of the chain, note at 2026-01-01 09:03:00 UTC) was changed" in report(store)


def test_an_edited_detail_or_time_is_named(store: Store) -> None:
    ids = fill(store)
    sql(store, "update event set at = :at where id = :id", at=T0 + timedelta(hours=5), id=ids[1])
    assert f"event #{ids[1]} (no. 2 of the chain" in report(store) and "was changed" in report(store)


def test_a_deleted_event_is_named(store: Store) -> None:
    ids = fill(store)
    sql(store, "delete from event where id = :id", id=ids[2])
    assert "event no. 3 of the chain is missing (deleted); next is event" in report(store)


def test_deleting_the_newest_events_is_caught_by_the_head(store: Store) -> None:
    ids = fill(store)
    sql(store, "delete from event where id >= :id", id=ids[4])
    assert report(store).endswith("the newest 2 event(s) of the chain are missing (deleted)")


def test_reordered_events_are_named(store: Store) -> None:
    ids = fill(store)
    sql(store, "update event set seq = 100 where id = :id", id=ids[1])
    sql(store, "update event set seq = 2 where id = :id", id=ids[2])
    sql(store, "update event set seq = 3 where id = :id", id=ids[1])
    assert f"event #{ids[2]} (no. 2 of the chain" in report(store) and "does not follow the event before it" in (
        report(store)
    )


def test_concurrent_appends_to_one_chain_do_not_fork_it(store: Store) -> None:
    barrier = threading.Barrier(8)

    def append(i: int) -> None:
        barrier.wait()
        with store.session() as s:
            record(s, playbook="p", kind="note", at=T0, summary=f"n{i}")
            s.commit()

    threads = [threading.Thread(target=append, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.session() as s:
        result = verify_chain(s, "playbook:p")
    assert result.ok and result.events == 8


def test_events_written_before_the_chain_existed_are_chained_by_the_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0002")
    with engine.begin() as conn:
        for i in range(3):
            conn.execute(
                sqlalchemy.text(
                    "insert into event (playbook, at, kind, summary, details) values ('p', :at, 'note', :s, '{}')"
                ),
                {"at": (T0 + timedelta(minutes=i)).replace(tzinfo=None), "s": f"old {i}"},
            )
    engine.dispose()
    store = Store(url)  # migrates to head
    with store.session() as s:
        assert chains(s) == ["playbook:p"]
        assert verify_chain(s, "playbook:p").events == 3 and verify_chain(s, "playbook:p").ok
        record(s, playbook="p", kind="note", at=T0, summary="new")
        s.commit()
        assert verify_chain(s, "playbook:p").ok
    store.close()


def test_cli_audit_verify(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    store = Store(url)
    ids = fill(store)
    good = subprocess.run(
        [sys.executable, "-m", "rollback_bot.cli", "audit", "verify", "--database", url], capture_output=True, text=True
    )
    assert good.returncode == 0 and "playbook:p: 6 events, chain intact, final hash " in good.stdout
    sql(store, 'update event set details = \'{"text": "forged"}\' where id = :id', id=ids[0])
    store.close()
    bad = subprocess.run(
        [sys.executable, "-m", "rollback_bot.cli", "audit", "verify", "--database", url], capture_output=True, text=True
    )
    assert bad.returncode == 1 and f"BROKEN: event #{ids[0]} (no. 1 of the chain" in bad.stderr


def test_the_hash_is_sha256_of_the_sorted_compact_json_of_the_content() -> None:
    """The hash written out key by key (chain.content_hash) is the documented one, for awkward content too."""
    import hashlib
    import json

    from rollback_bot.store.chain import event_hash

    for actor, role, incident, summary, details in [
        ("U1", "approver", 1, "plain", {"b": 1, "a": [1.5, None, True], "z": {"y": "é", "x": 1e-7}}),
        (None, None, None, 'quote " back\\slash \n tab\t \u2028 \x00 emoji \U0001f600', {}),
        ("U\u00e9", "", 10**12, "", {"nested": {"k": [{"b": 2, "a": 1}]}, "inf": "+Inf", "n": -0.0}),
    ]:
        content = {
            "chain": "incident:7",
            "seq": 3,
            "prev": "f" * 64,
            "incident": incident,
            "playbook": "p\u00fc",
            "at": "2026-01-01T09:00:00.000001+00:00",
            "kind": "note",
            "actor": actor,
            "role": role,
            "summary": summary,
            "details": details,
        }
        data = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        expected = hashlib.sha256(data.encode()).hexdigest()
        got = event_hash(
            chain="incident:7",
            seq=3,
            prev_hash="f" * 64,
            incident_id=incident,
            playbook="p\u00fc",
            at=datetime(2026, 1, 1, 9, 0, 0, 1, tzinfo=UTC),
            kind="note",
            actor=actor,
            role=role,
            summary=summary,
            details=details,
        )
        assert got == expected


# a subprocess: the CLI's split check forks, which a test worker (with threads of its own) must not do
_BOTH_WAYS = """
import json, sys
from rollback_bot.store import Store, stream, verify
stream.SPLIT_AT, forks, fork = 4, [], verify.in_fork
verify.in_fork = lambda work: forks.append(1) or fork(work)
store = Store(sys.argv[1])
out = {}
with store.session() as s:
    for chain in sys.argv[2:]:
        one, halves = verify.verify_chain(s, chain), verify.verify_chain(s, chain, store.engine)
        out[chain] = [str(one), str(halves), one == halves]
store.close()
print(json.dumps({"forks": len(forks), "chains": out}))
"""


_RESPELLED = '{"value": "+Inf", "text": "t8"}'  # the 9th event's details in another spelling
_FORGED = '{"text":"forged","value":"+Inf"}'  # the 10th's changed, written as the database writes


def test_a_long_chain_checked_in_two_halves_reports_what_one_pass_does(store: Store) -> None:
    """The CLI checks a long chain's halves at once (events 1-6, and 7-12 after reading the 6th's hash); every
    tampering, at the seam or away from it, is reported exactly as one pass reports it."""
    cases = {
        "untouched": [],
        "edited last of the first half": ["update event set summary = 'x' where chain = :c and seq = 6"],
        "edited first of the second half": ["update event set summary = 'x' where chain = :c and seq = 7"],
        "deleted last of the first half": ["delete from event where chain = :c and seq = 6"],
        "deleted first of the second half": ["delete from event where chain = :c and seq = 7"],
        "second half deleted": ["delete from event where chain = :c and seq >= 7"],
        "both sides of the seam deleted": ["delete from event where chain = :c and seq >= 6"],
        "swapped at the seam": [
            "update event set seq = 100 where chain = :c and seq = 6",
            "update event set seq = 6 where chain = :c and seq = 7",
            "update event set seq = 7 where chain = :c and seq = 100",
        ],
        "the two before the seam deleted": ["delete from event where chain = :c and seq in (5, 6)"],
        "all up to the seam deleted": ["delete from event where chain = :c and seq <= 6"],
        "deleted across the seam": ["delete from event where chain = :c and seq between 4 and 8"],
        "head changed": ["update chain_head set hash = 'f00d' where chain = :c"],
        "head behind": ["update chain_head set seq = 10 where chain = :c"],
        "edited early, second half intact": ["update event set summary = 'x' where chain = :c and seq = 3"],
        # the same details written otherwise (spaces, key order) are the same content; other values are not
        "details respelled": [f"update event set details = '{_RESPELLED}' where chain = :c and seq = 9"],
        "details forged": [f"update event set details = '{_FORGED}' where chain = :c and seq = 10"],
    }
    chain_of = {}
    for i, (case, statements) in enumerate(cases.items()):
        with store.session() as s:
            for n in range(12):
                details = {"text": f"t{n}", "value": float("inf")}
                record(s, playbook=f"p{i}", kind="note", at=T0 + timedelta(minutes=n), summary=f"n{n}", details=details)
            s.commit()
        chain_of[case] = f"playbook:p{i}"
        for statement in statements:
            sql(store, statement, c=chain_of[case])
    url = store.engine.url.render_as_string(hide_password=False)
    run = subprocess.run(
        [sys.executable, "-c", _BOTH_WAYS, url, *chain_of.values()], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["forks"] == len(cases)  # every chain (12 events) was checked in two halves
    for case, chain in chain_of.items():
        one, halves, same = result["chains"][chain]
        assert same, f"{case}: one pass says {one!r}, two halves say {halves!r}"
        assert ("chain intact" in one) == (case in ("untouched", "details respelled")), f"{case}: {one}"
    said = {case: result["chains"][chain][0] for case, chain in chain_of.items()}
    assert "no. 6 of the chain is missing" in said["deleted last of the first half"]
    assert "no. 5 of the chain is missing (deleted); next is event" in said["the two before the seam deleted"]
    assert "no. 1 of the chain is missing" in said["all up to the seam deleted"]
    assert "no. 4 of the chain is missing" in said["deleted across the seam"]
    assert "newest 6 event(s)" in said["second half deleted"]
    assert said["head changed"].endswith("hash is not its newest event's (no. 12): the head was changed")
    assert "the chain head (no. 10) is behind its newest event (no. 12)" in said["head behind"]


def test_content_that_is_not_text_where_text_belongs_hashes_as_json_writes_it() -> None:
    """The hash is written out in one piece for the usual text; anything else (a number where a name
    belongs) takes the general way, and the result is still the documented sha256 of the JSON."""
    import hashlib

    from rollback_bot.store.chain import content_hash

    fields: dict[str, Any] = {"chain": "c", "seq": 2, "prev_hash": "0", "incident_id": None, "playbook": 7}
    odd: dict[str, Any] = {"kind": ["k"], "role": 1.5}  # not text, where text belongs
    got = content_hash(**fields, **odd, at_iso="t", actor=None, summary="s", details={"b": 1})
    content: dict[str, Any] = {"actor": None, "at": "t", "chain": "c", "details": {"b": 1}, "incident": None}
    content["kind"] = ["k"]
    content |= {"playbook": 7, "prev": "0", "role": 1.5, "seq": 2, "summary": "s"}
    data = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert got == hashlib.sha256(data.encode()).hexdigest()


def test_a_long_read_stopped_early_leaves_no_cursor_open(store: Store) -> None:
    """A chain check that stops at a changed event stops reading there: PostgreSQL's server-side cursor is
    closed at once (not left to the garbage collector), and the session can go on."""
    from rollback_bot.store import stream

    fill(store, 12)
    with store.session() as s:
        stmt = sqlalchemy.select(Event.__table__.c.seq).order_by(Event.__table__.c.seq)  # type: ignore[attr-defined]
        read = stream.rows(s, stmt, batch=5)
        assert [next(read)[0] for _ in range(3)] == [1, 2, 3]
        del read  # a reader that stopped early
        if store.engine.dialect.name == "postgresql":
            assert s.connection().exec_driver_sql("select count(*) from pg_cursors").scalar() == 0
        assert len(list(stream.rows(s, stmt, batch=5))) == 12
