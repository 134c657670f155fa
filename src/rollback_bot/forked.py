"""Work done in a forked process while the caller goes on (the second core): for single-threaded callers
only (the CLI), since a fork copies no other thread, whatever lock it held."""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable
from typing import NoReturn, TypeVar, cast

T = TypeVar("T")
log = logging.getLogger(__name__)
INTERRUPTED = 130  # a forked child's exit code when Ctrl-C stopped it


def child(work: Callable[[], int], parent: int, what: str) -> NoReturn:
    """In a forked child: run `work` and leave with its exit code by os._exit (none of the parent's cleanup,
    buffered output or database connections, runs twice). Ctrl-C, which reaches the whole group, leaves with
    INTERRUPTED; a failure is said in the log while the parent is alive to do `what` itself."""
    code = 1
    try:
        code = work()
    except KeyboardInterrupt:
        code = INTERRUPTED
    except BaseException as exc:  # said here (the log is the parent's); the parent does the work itself
        if os.getppid() == parent:  # not when the parent is gone (killed): nobody waits for it
            log.warning("%s in a forked process failed (%s: %s); doing it in the parent", what, type(exc).__name__, exc)
    finally:
        os._exit(code)


def in_fork(work: Callable[[], T]) -> Callable[[], T]:
    """Start `work` in a forked process; the returned function waits for its result (pickled back through
    a pipe). Where there is no fork, or the child fails, `work` runs here when the result is asked for. The
    child leaves with os._exit: none of the parent's cleanup (buffered output, database connections) runs
    twice."""
    if not hasattr(os, "fork"):
        return work
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:

        def send() -> int:
            os.close(read_end)
            data = pickle.dumps(work())
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
            return 0

        child(send, parent, "work")
    os.close(write_end)

    def wait() -> T:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == INTERRUPTED:
            raise KeyboardInterrupt  # not redone here: the interrupt was meant for both
        if status != 0 or not data:
            return work()
        return cast(T, pickle.loads(data))  # our own child's bytes

    return wait
