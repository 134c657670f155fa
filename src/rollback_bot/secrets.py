"""`${VAR}` expansion from the environment, and redaction of the values it brings in (never recorded)."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

_ENV = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
_MIN_SECRET = 4  # shorter values would redact ordinary words


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
    """`text` with every secret (and its URL-encoded form) replaced by [redacted], in any letter case (an
    error page may echo a header lower- or upper-cased)."""
    forms = {f for s in secrets if len(s) >= _MIN_SECRET for f in (s, quote(s, safe=""))}
    if not forms:
        return text
    pattern = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.sub(pattern, "[redacted]", text, flags=re.IGNORECASE)
