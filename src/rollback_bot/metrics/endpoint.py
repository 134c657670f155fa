"""Where and how a source connects: URL, headers, basic auth, TLS; `${VAR}` expanded at read time."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from rollback_bot.secrets import MissingVariable, basic_auth_secrets, expand, secrets_in


@dataclass(frozen=True)
class Endpoint:
    """Connection settings as written in the playbook; hashable, so equal settings share one fetch."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    basic_auth: tuple[str, str] | None = None
    verify: bool = True
    ca_file: str | None = None

    def at(self, path: str) -> Endpoint:
        """The same connection to `path` under this URL (Prometheus' API under its base URL)."""
        return replace(self, url=self.url.rstrip("/") + path)

    def secrets(self) -> list[str]:
        """Values from the environment (and basic-auth credentials) that must never be recorded."""
        found = [s for _, v in self.headers for s in secrets_in(v)] + secrets_in(self.url)
        if self.basic_auth is not None:
            user, password = (expand(v) for v in self.basic_auth)
            found += secrets_in(self.basic_auth[0]) + basic_auth_secrets(user, password)
        return found

    def resolve(self) -> Resolved:
        """Expand `${VAR}`s now; raises ConnectionProblem naming a missing variable or CA file."""
        try:
            url = expand(self.url, strict=True)
            headers = {k: expand(v, strict=True) for k, v in self.headers}
            auth = tuple(expand(v, strict=True) for v in self.basic_auth) if self.basic_auth else None
        except MissingVariable as exc:
            raise ConnectionProblem(f"{exc}; it is needed to connect to this source") from None
        if self.ca_file is not None and not os.path.isfile(self.ca_file):
            raise ConnectionProblem(f"tls.ca_file {self.ca_file} does not exist")
        verify: bool | str = self.ca_file if self.ca_file is not None and self.verify else self.verify
        return Resolved(url, headers, (auth[0], auth[1]) if auth else None, verify)


@dataclass(frozen=True)
class Resolved:
    """Connection settings ready for requests (values expanded): keep out of readings and logs."""

    url: str
    headers: dict[str, str]
    auth: tuple[str, str] | None
    verify: bool | str


class ConnectionProblem(Exception):
    """The settings cannot be used as they are (never a network failure)."""
