"""Binding codes (CIBA `binding_message` style): derived from request id and digest, typed loosely, compared exactly."""

from __future__ import annotations

import re
from typing import Any

import pytest

from interlock.core.binding import ALPHABET, binding_code, matches, normalize

DIGEST = "0" * 64
CODE = re.compile(f"^[{ALPHABET}]{{3}}-[{ALPHABET}]{{3}}$")


def test_the_alphabet_has_no_look_alikes() -> None:
    assert not set(ALPHABET) & set("0O1IL")
    assert len(set(ALPHABET)) == len(ALPHABET) == 31


def test_a_code_is_six_unambiguous_characters_in_two_groups() -> None:
    assert CODE.fullmatch(binding_code("req_1", DIGEST))


def test_the_code_is_derived_so_it_needs_no_storage() -> None:
    # A pinned vector: SHA-256("req_1:000…0"), first 8 bytes, base 31, least significant symbol first.
    assert binding_code("req_1", DIGEST) == "KFC-C9K"
    assert binding_code("req_1", DIGEST) == binding_code("req_1", DIGEST)


def test_another_request_or_another_action_has_another_code() -> None:
    assert binding_code("req_2", DIGEST) != binding_code("req_1", DIGEST)
    assert binding_code("req_1", "1" + DIGEST[1:]) != binding_code("req_1", DIGEST)
    codes = {binding_code(f"req_{n}", DIGEST) for n in range(2000)}
    assert len(codes) >= 1995  # 31**6 ≈ 8.9e8 codes: collisions among 2000 are rare


@pytest.mark.parametrize("typed", ["KFC-C9K", "kfc-c9k", "KFCC9K", " kfc c9k ", "K-F-C-C-9-K", "kfc\tc9k"])
def test_case_dashes_and_spaces_do_not_matter(typed: str) -> None:
    assert matches("req_1", DIGEST, typed)


@pytest.mark.parametrize("typed", [None, "", "KFC-C9", "KFC-C9KK", "ZYN-ZNS", "KFC_C9K", "K" * 65, 123, ["KFC-C9K"]])
def test_anything_else_does_not_match(typed: Any) -> None:
    assert not matches("req_1", DIGEST, typed)


def test_normalize_keeps_what_it_does_not_ignore() -> None:
    assert normalize(" ab-c d ") == "ABCD"
