"""A signature is taken once, also when two requests carrying it race past the replay check (PostgreSQL's
rowcount of INSERT ... ON CONFLICT DO NOTHING through the ORM is -1, which read as 'taken')."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from rollback_bot.store import Store, inbound


def test_a_signature_is_taken_once_sequentially_and_concurrently(store: Store) -> None:
    at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    with store.session() as s:
        assert inbound.take(s, signature="v0=one", at=at) is True
        s.commit()
    with store.session() as s:
        assert inbound.take(s, signature="v0=one", at=at) is False

    results: list[bool] = []
    barrier = threading.Barrier(4)

    def race() -> None:
        barrier.wait()
        with store.session() as s:
            results.append(inbound.take(s, signature="v0=two", at=at))
            s.commit()

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [False, False, False, True]
