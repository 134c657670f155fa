"""Hard deadlines for fetches: the sockets a fetch opens are registered, and shut down if the fetch outlives
its deadline, so even a server trickling its status line or headers (where requests and http.client have no
total timeout) cannot keep a read thread past it.

The registry is per thread (`watching(w)` around a fetch); the hooks are urllib3 connection classes mounted
on the session by `guard_session`, and do nothing for requests made outside `watching`."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class Watch:
    """The connections of one fetch; `expire()` shuts their sockets down (and any opened later).

    Both the connection (it may still be connecting) and its socket once connected are kept: with
    `Connection: close`, http.client hands the socket to the response and clears `conn.sock`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: list[HTTPConnection] = []
        self._sockets: list[socket.socket] = []
        self.expired = False

    def add(self, conn: HTTPConnection) -> None:
        with self._lock:
            self._connections.append(conn)
            expired = self.expired
        if expired:
            _shut(getattr(conn, "sock", None))

    def add_socket(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            socks = [getattr(c, "sock", None) for c in self._connections] + list(self._sockets)
        for sock in socks:
            _shut(sock)


def _shut(sock: socket.socket | None) -> None:
    if sock is not None:
        with suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it, whatever it was reading


@contextmanager
def watching(watch: Watch | None) -> Iterator[None]:
    previous = getattr(_current, "watch", None)
    _current.watch = watch
    try:
        yield
    finally:
        _current.watch = previous


def _connect(conn: HTTPConnection, connect: Any) -> None:
    watch: Watch | None = getattr(_current, "watch", None)
    if watch is not None:
        watch.add(conn)
    connect()
    if watch is not None:
        watch.add_socket(conn.sock)


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        _connect(self, super().connect)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        _connect(self, super().connect)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A plain HTTPAdapter whose connections register with the fetch that opened them."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def guard_session(session: requests.Session, pool_size: int) -> None:
    """Mount guarded adapters (with `pool_size` connections per host) in place of the session's plain ones.
    Do it before other threads use the session."""
    for prefix, adapter in list(session.adapters.items()):
        if type(adapter) is HTTPAdapter:
            session.mount(
                prefix,
                GuardedAdapter(
                    pool_connections=getattr(adapter, "_pool_connections", 10),
                    pool_maxsize=max(pool_size, getattr(adapter, "_pool_maxsize", 10)),
                    max_retries=adapter.max_retries,
                    pool_block=getattr(adapter, "_pool_block", False),
                ),
            )
