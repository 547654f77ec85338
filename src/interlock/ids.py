"""Record ids: a prefix naming the kind (`req_`, `grt_`, `apr_`, …) and a UUIDv7 in hex.

UUIDv7 (RFC 9562 §5.7) starts with the Unix time in milliseconds, so a new row's key lands at the end of
its index instead of on a random page: an allowed submit's commit cost 137 instead of 178 µs on a store of
100,000 requests (`bench/breakdown.py`'s rows, measured 2026-11-29). The 74 bits after the time are random.
Ids are names, not secrets: nothing is granted by knowing one (tokens and session keys come from `secrets`).
Python's `uuid.uuid7` arrives in 3.14; until then it is written out here.
"""

from __future__ import annotations

import os
import time

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_RANDOM_A = ((1 << 12) - 1) << 64  # 12 random bits after the version
_RANDOM_B = (1 << 62) - 1  # 62 random bits after the variant


def uuid7_int() -> int:
    """A UUIDv7 as a 128-bit integer: 48 bits of Unix milliseconds, version 7, 12 random bits, variant, 62 random."""
    milliseconds = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")
    return (milliseconds & ((1 << 48) - 1)) << 80 | _VERSION_7 | random & _RANDOM_A | _VARIANT_RFC | random & _RANDOM_B


def new_id(prefix: str) -> str:
    """`prefix_` and 32 lowercase hex digits; ids made later sort after (those of one millisecond in any order)."""
    return f"{prefix}_{uuid7_int():032x}"
