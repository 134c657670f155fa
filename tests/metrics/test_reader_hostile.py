"""Reader against hostile endpoints on loopback: each fails alone, the healthy signal is read, on time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from rollback_bot.metrics import JsonSource, Reader
from rollback_bot.metrics.fetch import Answer
from rollback_bot.rules.readings import Reading
from tests.helpers import loopback_session
from tests.metrics.hostile import MB, HostileServer, gzip_bomb

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DEADLINE = 2.0
MARGIN = 0.5


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    gzip_bomb()  # made once per process (1.5 s of CPU), before any test's clock starts
    box = HostileServer()
    yield box
    box.close()


@pytest.fixture
def reader() -> Iterator[Reader]:
    r = Reader(loopback_session())
    yield r
    r.close()


HOSTILE = [
    # (signal, route, json path, the reason must contain)
    ("deep", "/deep", "value", "answer is JSON nested too deeply to read"),
    ("trickle", "/trickle", "value", "answer not complete within 2s"),
    ("huge", "/huge", "value", "answer larger than 4 MiB (MAX_RESPONSE_BYTES)"),
    ("declared", "/huge-declared", "value", f"answer larger than 4 MiB (MAX_RESPONSE_BYTES): it says {300 * MB}"),
    ("loop", "/redirect-loop", "value", "more than 5 redirects"),
    ("latin1", "/latin1", "value", "answer is not UTF-8 text (byte 0xe9 at 14)"),
    ("lying", "/lying-length", "value", "answer cut short"),
    ("bomb", "/gzip-bomb", "value", "answer larger than 4 MiB (MAX_RESPONSE_BYTES)"),
    ("silent", "/silent", "value", "no answer within 2s"),
    ("bool", "/ok", "flag", "'flag' is a boolean (true), not a number"),
    ("string", "/ok", "ratio", "'ratio' is a string (\"0.25\"), not a number; set numeric_strings: true"),
]


def test_each_hostile_source_fails_alone_within_the_deadline(hostile: HostileServer, reader: Reader) -> None:
    healthy = JsonSource("healthy", f"{hostile.url}/ok", "value", DEADLINE)
    sources = [healthy] + [JsonSource(n, f"{hostile.url}{route}", p, DEADLINE) for n, route, p, _ in HOSTILE]
    started = time.monotonic()
    readings = reader.read_all(sources, lambda: NOW)
    took = time.monotonic() - started
    assert [r.signal for r in readings] == [s.signal for s in sources]
    assert (readings[0].status, readings[0].value) == ("ok", 1.5)
    for (name, _, _, reason), r in zip(HOSTILE, readings[1:], strict=True):
        assert r.status == "error", (name, r)
        assert reason in r.detail, (name, r.detail)
    assert took < DEADLINE + MARGIN + 0.3, took
    assert hostile.wait_finished("/huge")
    assert hostile.sent["/huge"] < 40 * MB, hostile.sent["/huge"]  # the client stopped early, not at 300 MB


def test_numeric_strings_accepts_plain_decimals_only(hostile: HostileServer, reader: Reader) -> None:
    src = JsonSource("s", f"{hostile.url}/ok", "ratio", 2, numeric_strings=True)
    assert src.read(loopback_session(), NOW).value == 0.25
    doc_values = {
        "0.5": 0.5,
        "-3": -3.0,
        "1e3": 1000.0,
        ".5": 0.5,
        "+Inf": float("inf"),
        "-Inf": float("-inf"),
        "Inf": float("inf"),
    }
    for text, value in doc_values.items():
        assert JsonSource("s", "", "v", 1, numeric_strings=True).extract({"v": text}, NOW).value == value, text
    nan = JsonSource("s", "", "v", 1, numeric_strings=True).extract({"v": "NaN"}, NOW)
    assert (nan.status, nan.detail) == ("nodata", "NaN")
    for text in ("0x10", "1_000", " 5 ", "١٢", "infinity", "nan", "", "--1", "1e", "0.5%"):
        r = JsonSource("s", "", "v", 1, numeric_strings=True).extract({"v": text}, NOW)
        assert r.status == "error" and "is not a number" in r.detail, (text, r)


def test_a_fetch_past_its_deadline_is_cut_off_even_while_headers_trickle(hostile: HostileServer) -> None:
    """Headers trickled byte by byte outlast any socket timeout; the reader shuts the socket down at the
    deadline, so the thread is free at once and the next poll tries again (once), never piling up."""
    url = f"{hostile.url}/slow-headers"
    reader = Reader(loopback_session())
    try:
        sources = [JsonSource("a", url, "value", 0.5), JsonSource("b", url, "other", 0.5)]
        started = time.monotonic()
        first = reader.read_all(sources, lambda: NOW)
        assert time.monotonic() - started < 0.5 + MARGIN + 0.3
        assert hostile.wait_finished("/slow-headers", 1.0), "the server saw the connection closed"
        second = reader.read_all(sources, lambda: NOW)
        assert [r.detail for r in first + second] == ["no answer within 0.5s"] * 4
        assert hostile.asked["/slow-headers"] == 2  # one fetch a poll, shared by both signals
    finally:
        reader.close()


@pytest.mark.parametrize("route", ["/slow-headers", "/chunk-trickle", "/trickle", "/silent"])
def test_every_fetch_is_over_when_read_all_returns(hostile: HostileServer, route: str) -> None:
    """Whatever phase a hanging answer is in (headers, a chunk-size line, the body, nothing), its thread is
    free and its connection closed once read_all has returned."""
    reader = Reader(loopback_session())
    try:
        [r] = reader.read_all([JsonSource("s", f"{hostile.url}{route}", "value", 0.5)], lambda: NOW)
        assert r.status == "error" and "within 0.5s" in r.detail
        if route != "/silent":  # a server that never writes cannot notice the close
            assert hostile.wait_finished(route, 1.0), "the server saw the connection closed"
        time.sleep(0.2)
        assert reader._running == {}, "no fetch left running"
    finally:
        reader.close()


def test_more_hanging_endpoints_than_threads_cannot_starve_a_healthy_one(hostile: HostileServer) -> None:
    """Endpoints that answered before start first: 12 hanging endpoints on 4 read threads cannot delay the
    healthy one, poll after poll, and every read returns within the deadline."""
    reader = Reader(loopback_session(), max_workers=4)
    try:
        healthy = JsonSource("healthy", f"{hostile.url}/ok", "value", 0.5)
        assert reader.read_all([healthy], lambda: NOW)[0].value == 1.5  # it has answered before
        hanging = [JsonSource(f"h{i}", f"{hostile.url}/slow-headers?n={i}", "value", 0.5) for i in range(12)]
        for _ in range(3):
            started = time.monotonic()
            readings = reader.read_all([*hanging, healthy], lambda: NOW)
            assert time.monotonic() - started < 0.5 + MARGIN + 0.3
            assert readings[-1].value == 1.5
            assert all(r.status == "error" and "within 0.5s" in r.detail for r in readings[:-1])
    finally:
        reader.close()


def test_a_closed_reader_fails_every_read_without_raising(hostile: HostileServer) -> None:
    r = Reader(loopback_session())
    r.close()
    out = r.read_all([JsonSource("a", f"{hostile.url}/ok", "value", 1)], lambda: NOW)
    assert out[0].status == "error" and "reader failed" in out[0].detail


class _Exploding(JsonSource):
    """A source whose reading of the answer raises, as a parser bug or a MemoryError would."""

    def interpret(self, answer: Answer, at: datetime) -> Reading:
        raise RecursionError("maximum recursion depth exceeded")


def test_an_exception_while_reading_an_answer_fails_that_signal_only(hostile: HostileServer, reader: Reader) -> None:
    sources = [_Exploding("boom", f"{hostile.url}/ok", "value", 1), JsonSource("ok", f"{hostile.url}/ok", "value", 1)]
    boom, ok = reader.read_all(sources, lambda: NOW)
    assert (boom.status, boom.detail) == ("error", "cannot read the answer: RecursionError")
    assert ok.value == 1.5
