"""Durations as written in policies and history queries: `90s`, `15m`, `1h`, `7d`, or combined `1h30m`."""

from __future__ import annotations

import re
from functools import lru_cache

_PART = re.compile(r"(\d{1,7})([smhd])")
_WHOLE = re.compile(r"^(?:\d{1,7}[smhd])+$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@lru_cache(maxsize=256)
def parse_duration(text: str) -> int:
    """Return the duration in whole seconds; raise ValueError for anything else or zero."""
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        raise ValueError(f"`{text}` is not a duration like 90s, 15m, 1h or 7d")
    seconds = sum(int(n) * _SECONDS[unit] for n, unit in _PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"`{text}` is not a positive duration")
    return seconds
