"""Errors the command line turns into one line and an exit code, importable without the heavy modules."""

from __future__ import annotations


class DatabaseUnreachable(Exception):
    """The database cannot be opened at all (at start): said in one line, with what to check."""
