"""A reading is one poll of one signal: a value, or no data with the reason."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Status = Literal["ok", "nodata", "error"]
STALE = "stale"


@dataclass(frozen=True)
class Reading:
    signal: str
    at: datetime
    value: float | None
    status: Status = "ok"
    detail: str = ""

    @property
    def usable(self) -> bool:
        """True for a real number (+/-Inf included); NaN, empty and failed reads are not data."""
        return self.status == "ok" and self.value is not None and not math.isnan(self.value)

    @property
    def is_stale(self) -> bool:
        """No data because the newest sample is too old (see Reading.stale)."""
        return self.status == "nodata" and self.detail.startswith(STALE)

    @classmethod
    def stale(cls, signal: str, at: datetime, detail: str) -> Reading:
        return cls(signal, at, None, "nodata", f"{STALE}: {detail}")

    @classmethod
    def of(cls, signal: str, at: datetime, value: float) -> Reading:
        if math.isnan(value):
            return cls(signal, at, None, "nodata", "NaN")
        return cls(signal, at, value)

    @classmethod
    def nodata(cls, signal: str, at: datetime, detail: str) -> Reading:
        return cls(signal, at, None, "nodata", detail)

    @classmethod
    def error(cls, signal: str, at: datetime, detail: str) -> Reading:
        return cls(signal, at, None, "error", detail)
