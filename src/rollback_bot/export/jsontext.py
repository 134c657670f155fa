"""json.dumps(value, indent=1, ensure_ascii=False, default=str), the same text, several times faster: with an
indent the standard library falls back to its pure-Python encoder, whose generators cost ~1 s on the summary
of a long incident (tens of thousands of approvals, refusals and action results)."""

from __future__ import annotations

import json
from collections.abc import Collection
from json.encoder import encode_basestring
from typing import Any, TextIO

INFINITY = float("inf")


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == INFINITY:
        return "Infinity"
    if value == -INFINITY:
        return "-Infinity"
    return float.__repr__(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, float):
        return _float(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {key.__class__.__name__}")


def dumps_indent1(value: Any) -> str:
    out: list[str] = []
    _write(value, "\n", out.append)
    return "".join(out)


def write_members_indent1(
    members: dict[str, Any], fp: TextIO, flush_every: int = 20_000, records: Collection[str] = ()
) -> None:
    """The text of dumps_indent1(members) up to, and without, its closing brace (the caller continues the
    object), written to `fp` as it goes: the summary of a long incident is hundreds of thousands of pieces.
    The lists named in `records` are written one compact item per line instead (as json.dumps writes each
    with its default separators, by the standard library's C encoder): tens of thousands of refusals or
    action results, each on its line like the timeline's events."""
    pieces: list[str] = []

    def put(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) >= flush_every:
            fp.write("".join(pieces))
            pieces.clear()

    sep = "{\n "
    for key, item in members.items():
        put(sep + encode_basestring(key if type(key) is str else _key(key)) + ": ")
        sep = ",\n "
        if key in records and type(item) is list and item:
            put("[\n  " + ",\n  ".join(map(_COMPACT, item)) + "\n ]")
        else:
            _write(item, "\n ", put)
    fp.write("".join(pieces))


_COMPACT = json.JSONEncoder(ensure_ascii=False, default=str).encode


def _write(o: Any, newline: str, put: Any) -> None:
    """`newline` is the line break and indent of the current level."""
    t = type(o)
    if t is str:
        put(encode_basestring(o))
    elif t is dict:
        if not o:
            put("{}")
            return
        inner = newline + " "
        sep = "{" + inner
        for key, item in o.items():
            tk = type(key)
            put(sep + encode_basestring(key if tk is str else _key(key)) + ": ")
            sep = "," + inner
            ti = type(item)
            if ti is str:
                put(encode_basestring(item))
            elif item is None:
                put("null")
            elif ti is int:
                put(int.__repr__(item))
            else:
                _write(item, inner, put)
        put(newline + "}")
    elif t is list or t is tuple:
        if not o:
            put("[]")
            return
        inner = newline + " "
        sep = "[" + inner
        for item in o:
            put(sep)
            sep = "," + inner
            _write(item, inner, put)
        put(newline + "]")
    else:
        _scalar(o, newline, put)


def _scalar(o: Any, newline: str, put: Any) -> None:
    """Everything but exact str, dict, list and tuple, in json's own order of checks."""
    if isinstance(o, str):
        put(encode_basestring(o))
    elif o is None:
        put("null")
    elif o is True:
        put("true")
    elif o is False:
        put("false")
    elif isinstance(o, int):
        put(int.__repr__(o))
    elif isinstance(o, float):
        put(_float(o))
    elif isinstance(o, list | tuple):
        _write(list(o), newline, put)
    elif isinstance(o, dict):
        _write(dict(o), newline, put)
    else:
        _write(str(o), newline, put)  # default=str
