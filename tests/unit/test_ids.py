"""Record ids: `prefix_` and a UUIDv7 (RFC 9562 §5.7) in hex, ordered by time, random after it."""

from __future__ import annotations

import re
import time
import uuid

from interlock.ids import new_id


def test_an_id_is_its_prefix_and_a_version_7_rfc_uuid_in_lowercase_hex() -> None:
    made = new_id("req")
    assert re.fullmatch(r"req_[0-9a-f]{32}", made)
    parsed = uuid.UUID(hex=made.removeprefix("req_"))
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_an_id_starts_with_the_unix_milliseconds_it_was_made_in() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id("grt")
    after = time.time_ns() // 1_000_000
    assert before <= int(made[4:16], 16) <= after


def test_ids_made_in_a_later_millisecond_sort_after() -> None:
    first = new_id("req")
    time.sleep(0.002)
    assert new_id("req") > first


def test_ids_of_one_millisecond_differ_in_their_random_bits() -> None:
    made = {new_id("req")[4:] for _ in range(10_000)}
    assert len(made) == 10_000
    # 74 random bits: each of them varies across the ids (none stuck at 0 or 1 by a wrong mask)
    values = [int(hex_id, 16) for hex_id in made]
    random_bits = [bit for bit in range(76) if bit not in (62, 63)]
    for bit in random_bits:
        ones = sum(value >> bit & 1 for value in values)
        assert 4_000 < ones < 6_000, f"bit {bit} is set in {ones} of 10,000 ids"
