"""Where `rollback-bot export --out` writes, decided before any work: a file replaced only once the export is
complete (by way of FILE.PID.partial beside it, renamed over it), or a device or pipe written to as it goes;
never a folder, a read-only file, a loop of links or the database being exported."""

from __future__ import annotations

import glob
import os
import stat
from contextlib import suppress
from pathlib import Path


def where_to(out: Path) -> tuple[Path | None, Path | None] | str:
    """--out as (the file to replace, or a device or pipe to write to as it goes), or why it cannot be."""
    try:
        if out.is_dir():
            return f"--out {out} is a folder; name a file in it"
        if out.exists() and not out.is_file():
            return None, out
        if out.is_symlink():  # to a file: the file it points at is replaced; the link stays
            out = out.resolve()
        if out.exists() and not stat.S_IMODE(out.stat().st_mode) & 0o222:
            return f"--out {out} is read-only; remove it, or choose another file"
    except RuntimeError:  # Python 3.11's word for a loop of links
        return f"--out {out} is a loop of symbolic links"
    except OSError as exc:
        return f"--out {out}: {exc.strerror or exc}"
    return out, None


def partial_of(out: Path) -> Path:
    """This process's file beside `out`, renamed over it once the export is complete: exports at once to one
    file each have their own."""
    return out.with_name(f"{out.name}.{os.getpid()}.partial")


def sweep(out: Path) -> None:
    """Remove what exports to `out` killed outright (kill -9) left: FILE.PID.partial of a PID that is gone."""
    for left in out.parent.glob(f"{glob.escape(out.name)}.*.partial"):
        pid = left.name[len(out.name) + 1 : -len(".partial")]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            left.unlink(missing_ok=True)
        except (PermissionError, OverflowError):  # another user's live process; no such number
            continue


def is_database(out: Path, database: str) -> bool:
    """Whether `out` is the SQLite database, or one of the files SQLite keeps beside it."""
    real = os.path.realpath(out)
    return any(real == os.path.realpath(database + end) for end in ("", "-wal", "-shm", "-journal", ".writer"))


def keep_mode(out: Path, partial: Path) -> None:
    """The replaced file's permissions (and owner, where this process may set it) on its replacement: a private
    post-mortem stays private."""
    try:
        st = out.stat()
    except FileNotFoundError:
        return
    os.chmod(partial, st.st_mode & 0o7777)
    with suppress(PermissionError):
        os.chown(partial, st.st_uid, st.st_gid)
