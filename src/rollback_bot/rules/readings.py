"""A reading is one poll of one signal: a value, or no data with the reason."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Status = Literal["ok", "nodata", "error"]


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
