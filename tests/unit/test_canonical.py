"""The canonical JSON fast path gives exactly the bytes of the RFC 8785 reference, or defers to it."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.core.canonical import _fast_path_applies, canonical_json

MAX_SAFE = 2**53 - 1
# Any Unicode scalar value (no lone surrogates: strict JSON refuses them before anything is canonicalized).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
scalars = (
    st.none() | st.booleans() | st.integers(-MAX_SAFE, MAX_SAFE) | text
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=20
)


@settings(max_examples=1500, deadline=None)
@given(json_values)
def test_canonical_json_equals_the_reference(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        {"\ue000": 1, "\U0001f600": 2},  # UTF-16 order puts the emoji's surrogates first; code points don't
        {"b": "\x00\x1f\u2028\"\\/\x7f", "a": ["\b\f\n\r\t"]},
        {"n": [0, -0, MAX_SAFE, -MAX_SAFE, True, False, None]},
        {"f": [1.0, 0.1, 1e21, 1e-7, -0.0, 5e-324]},
    ],
)
def test_the_edges_of_the_fast_path_match_the_reference(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_typical_params_take_the_fast_path() -> None:
    params = {"amount": 48000, "currency": "EUR", "recipient": "GB33BUKB20201555555555", "tags": ["a", "ü"]}
    assert _fast_path_applies({"action": "payments.transfer", "resource": "account:treasury", "params": params})


@pytest.mark.parametrize("value", [{"x": 1.5}, {"\U0001f600": 1}, {"big": 2**53}, {"t": (1, 2)}])
def test_floats_astral_keys_unsafe_integers_and_tuples_go_to_the_reference(value: Any) -> None:
    assert not _fast_path_applies(value)


def test_what_the_reference_refuses_is_still_refused() -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_json({"big": 2**60})
