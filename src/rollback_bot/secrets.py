"""`${VAR}` expansion from the environment, and redaction of the values it brings in (never recorded)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

_ENV = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
# Shorter values are not redacted: replacing every 'dev' or 'abc' in a response would wreck the text and
# hide nothing (a 3-character secret is no secret). Such a value is still expanded and sent.
_MIN_SECRET = 4
_B64_CHAR = "[A-Za-z0-9+/_-]"
REDACTED = "[redacted]"


class MissingVariable(Exception):
    """A `${VAR}` whose variable is unset or empty; carries the name, never a value."""

    def __init__(self, name: str) -> None:
        super().__init__(f"environment variable {name} is not set")
        self.name = name


def expand(value: str, *, strict: bool = False) -> str:
    """Replace each `${VAR}` with its value; an unset one is '' or, when strict, MissingVariable."""

    def one(m: re.Match[str]) -> str:
        found = os.environ.get(m.group(1), "")
        if strict and not found:
            raise MissingVariable(m.group(1))
        return found

    return _ENV.sub(one, value)


def strings(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string inside a JSON-like value, with its path (webhook bodies)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, (*path, i))


def expand_all(value: Any, *, strict: bool = False) -> Any:
    """`expand` on every string inside a JSON-like value."""
    if isinstance(value, str):
        return expand(value, strict=strict)
    if isinstance(value, dict):
        return {k: expand_all(v, strict=strict) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_all(v, strict=strict) for v in value]
    return value


def unset_in(value: str) -> list[str]:
    """The names of the `${VAR}`s in `value` that are unset or empty, once each."""
    return list(dict.fromkeys(name for name in _ENV.findall(value) if not os.environ.get(name)))


def secrets_in(value: str) -> list[str]:
    """The values `${VAR}` expands to in `value`: never to be recorded, even if an endpoint echoes them."""
    return [v for name in _ENV.findall(value) if len(v := os.environ.get(name, "")) >= _MIN_SECRET]


def basic_auth_secrets(username: str, password: str) -> list[str]:
    """A password and the Authorization value it travels in (an endpoint may echo either)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return [s for s in (password, token) if len(s) >= _MIN_SECRET]


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by [redacted]: as it is and in any letter case, URL-encoded,
    JSON-escaped and base64-encoded (either alphabet, padded or not, at any alignment inside a longer
    base64 run, e.g. `Basic base64(user:secret)`). A secret that is itself base64 of `user:password`
    (a Basic credential) is also redacted decoded, and its password alone."""
    pattern = _pattern(frozenset(s for s in secrets if len(s) >= _MIN_SECRET))
    return text if pattern is None else pattern.sub(REDACTED, text)


@lru_cache(maxsize=64)
def _pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    pieces: dict[str, int] = {}  # regex -> length of what it matches at least, longest tried first
    for secret in secrets:
        for value in (secret, *_decoded_basic(secret)):
            for form in _text_forms(value):
                pieces.setdefault(re.escape(form), len(form))
            for core, lead, trail in _base64_cores(value):
                pieces.setdefault(
                    f"{_B64_CHAR}{{0,{lead}}}{re.escape(core)}{_B64_CHAR}{{0,{trail}}}={{0,2}}", len(core)
                )
                if (escaped := quote(core, safe="")) != core:  # base64 in a query string
                    pieces.setdefault(re.escape(escaped), len(escaped))
    if not pieces:
        return None
    ordered = sorted(pieces, key=lambda p: pieces[p], reverse=True)
    return re.compile("|".join(ordered), re.IGNORECASE)


def _text_forms(value: str) -> set[str]:
    """The secret as text may travel: plain (case is folded by the pattern), URL- and JSON-escaped."""
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value), json.dumps(value)[1:-1]}
    forms.add(json.dumps(value)[1:-1].replace("/", "\\/"))
    return {f for f in forms if len(f) >= _MIN_SECRET}


def _base64_cores(value: str) -> Iterator[tuple[str, int, int]]:
    """(core, lead, trail) for the secret's bytes at each of the 3 alignments in a base64 stream, in both
    alphabets and in its lower/upper-cased forms: `core` is the part of the encoding that depends on the
    secret alone; `lead`/`trail` characters around it mix in neighbouring bytes (redacted with it)."""
    for variant in dict.fromkeys((value, value.lower(), value.upper())):
        data = variant.encode()
        for k in range(3):
            encoded = base64.b64encode(b"\0" * k + data).decode().rstrip("=")
            lead = math.ceil(8 * k / 6)
            core = encoded[lead : 8 * (k + len(data)) // 6]
            trail = len(encoded) - 8 * (k + len(data)) // 6
            if len(core) >= _MIN_SECRET:
                yield core, lead, trail
                yield core.replace("+", "-").replace("/", "_"), lead, trail


def _decoded_basic(secret: str) -> list[str]:
    """For a secret that is base64 of 'user:password' (a Basic credential): that text and the password."""
    try:
        text = base64.b64decode(secret + "=" * (-len(secret) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return []
    if ":" not in text or not text.isprintable():
        return []
    return [s for s in (text, text.split(":", 1)[1]) if len(s) >= _MIN_SECRET]
