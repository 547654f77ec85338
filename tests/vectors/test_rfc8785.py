"""RFC 8785 vectors (cyberphone/json-canonicalization testdata): strict parse, then JCS, gives the output bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import rfc8785

from interlock.core.action import action_digest
from interlock.core.canonical import canonical_json
from interlock.core.strict_json import parse

VECTORS = Path(__file__).parent / "rfc8785"
INPUTS = sorted((VECTORS / "input").glob("*.json"))


def test_every_vector_has_an_expected_output() -> None:
    # The six files of the upstream testdata; a vector lost in a copy must not pass silently.
    assert [p.name for p in INPUTS] == [
        "arrays.json", "french.json", "structures.json", "unicode.json", "values.json", "weird.json",
    ]
    for path in INPUTS:
        assert (VECTORS / "output" / path.name).is_file(), path.name


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.stem)
def test_strict_parse_then_jcs_gives_the_canonical_bytes(path: Path) -> None:
    # Every upstream vector stays within our strict limits (no integer beyond 2^53, no duplicate
    # key, no lone surrogate), so each must pass the strict parser and canonicalize byte-exactly.
    expected = (VECTORS / "output" / path.name).read_bytes()
    assert rfc8785.dumps(parse(path.read_bytes())) == expected
    assert canonical_json(parse(path.read_bytes())) == expected  # the fast path agrees, or defers


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.stem)
def test_canonical_output_is_a_fixed_point(path: Path) -> None:
    expected = (VECTORS / "output" / path.name).read_bytes()
    assert rfc8785.dumps(parse(expected)) == expected


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.stem)
def test_action_digest_over_vector_params_hashes_their_canonical_form(path: Path) -> None:
    # The digest a grant is bound to embeds the vector's canonical bytes unchanged.
    value = parse(path.read_bytes())
    expected = (VECTORS / "output" / path.name).read_bytes()
    canonical = b'{"action":"a.b","params":{"v":' + expected + b'},"resource":"r"}'
    assert action_digest("a.b", "r", {"v": value}) == hashlib.sha256(canonical).hexdigest()
