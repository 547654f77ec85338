"""strict_json: every untrusted document is refused with a stable code before anything is decided (INVARIANT 8)."""

from __future__ import annotations

import json
import math

import pytest

from interlock.core.errors import RequestError
from interlock.core.strict_json import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_SAFE_INTEGER,
    MAX_STRING_BYTES,
    check_value,
    parse,
)


def refused(document: bytes | str) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse(document)
    return caught.value


def nested(levels: int, inner: str = "") -> str:
    return "[" * levels + inner + "]" * levels


def test_plain_document_parses_to_python_values() -> None:
    assert parse(b'{"a": [1, 2.5, "x", true, false, null], "b": {}}') == {
        "a": [1, 2.5, "x", True, False, None],
        "b": {},
    }


def test_str_and_bytes_give_the_same_value() -> None:
    assert parse('{"k": "é"}') == parse('{"k": "é"}'.encode()) == {"k": "é"}


@pytest.mark.parametrize(
    "document",
    [
        b'{"a": 1, "a": 2}',
        b'{"a": 1, "b": {"c": 1, "c": 1}}',
        b'[{"x": null, "x": null}]',
        # The same key spelt with an escape is still the same key after decoding.
        b'{"amount": 1, "\\u0061mount": 1000000}',
    ],
)
def test_duplicate_keys_are_refused(document: bytes) -> None:
    error = refused(document)
    assert error.code == "input.duplicate_key"


def test_duplicate_key_error_names_the_key() -> None:
    error = refused(b'{"recipient": "a", "recipient": "b"}')
    assert error.detail["key"] == "recipient"
    assert "recipient" in error.message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(constant: str) -> None:
    error = refused(f'{{"amount": {constant}}}')
    assert error.code == "input.invalid"
    assert constant in error.message


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1E309"])
def test_floats_that_overflow_to_infinity_are_refused(number: str) -> None:
    assert refused(f"[{number}]").code == "input.invalid"


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 0])
def test_safe_integers_pass(value: int) -> None:
    assert parse(json.dumps({"n": value})) == {"n": value}


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER + 1, -(MAX_SAFE_INTEGER + 1), 2**64, -(2**64)])
def test_integers_beyond_2_53_are_refused(value: int) -> None:
    error = refused(json.dumps({"n": value}))
    assert error.code == "input.invalid"
    assert "2^53" in error.message


@pytest.mark.parametrize("digits", [5000, 100_000])
def test_an_integer_with_thousands_of_digits_is_refused_not_a_crash(digits: int) -> None:
    # Python's int() refuses over 4300 digits with a bare ValueError; the parser must not leak it.
    assert refused("1" * digits).code == "input.invalid"
    assert refused("-" + "9" * digits).code == "input.invalid"


def test_nesting_of_exactly_max_depth_passes() -> None:
    value = parse(nested(MAX_DEPTH, "1"))
    for _ in range(MAX_DEPTH):
        value = value[0]
    assert value == 1


@pytest.mark.parametrize("inner", ["", "1"])
def test_nesting_deeper_than_max_depth_is_refused(inner: str) -> None:
    # With or without a scalar inside, 33 levels of containers are one too many.
    assert refused(nested(MAX_DEPTH + 1, inner)).code == "input.too_deep"


def test_deep_objects_are_refused_like_deep_arrays() -> None:
    document = '{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1)
    assert refused(document).code == "input.too_deep"


def test_a_hundred_thousand_levels_give_an_error_not_a_crash() -> None:
    error = refused(nested(100_000))
    assert error.code == "input.too_deep"


def test_a_string_of_64_kib_passes_and_one_byte_more_is_refused() -> None:
    assert parse(json.dumps("a" * MAX_STRING_BYTES)) == "a" * MAX_STRING_BYTES
    error = refused(json.dumps("a" * (MAX_STRING_BYTES + 1)))
    assert error.code == "input.too_large"


def test_string_limit_counts_utf8_bytes_not_characters() -> None:
    # 16,385 four-byte characters are under 64 Ki characters but over 64 KiB.
    emoji = "\U0001f600" * (MAX_STRING_BYTES // 4 + 1)
    assert refused(json.dumps(emoji, ensure_ascii=False)).code == "input.too_large"


def test_an_over_long_key_is_refused_too() -> None:
    assert refused(json.dumps({"k" * (MAX_STRING_BYTES + 1): 1})).code == "input.too_large"


def test_a_document_over_one_mib_is_refused() -> None:
    document = b'"' + b"a" * MAX_DOCUMENT_BYTES + b'"'
    error = refused(document)
    assert error.code == "input.too_large"
    assert str(MAX_DOCUMENT_BYTES) in error.message


def test_document_limit_is_checked_before_parsing() -> None:
    # Over the limit and not JSON at all: the size is what is reported.
    assert refused(b"{" * (MAX_DOCUMENT_BYTES + 1)).code == "input.too_large"


def test_max_bytes_can_be_lowered_by_the_caller() -> None:
    with pytest.raises(RequestError) as caught:
        parse(b"[1, 2, 3]", max_bytes=4)
    assert caught.value.code == "input.too_large"


@pytest.mark.parametrize(
    "document",
    [b'{"a": "\xff"}', b'"\xc3\x28"', b'"\xed\xa0\x80"', b'"\xf8\x88\x80\x80\x80"'],
    ids=["ff", "bad-continuation", "encoded-surrogate", "five-byte"],
)
def test_invalid_utf8_is_refused(document: bytes) -> None:
    error = refused(document)
    assert error.code == "input.invalid"
    assert "UTF-8" in error.message


def test_a_python_str_with_a_lone_surrogate_is_refused_not_a_crash() -> None:
    assert refused('{"a": "\ud800"}').code == "input.invalid"


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\ud83d x"])
def test_escaped_lone_surrogates_are_refused(escape: str) -> None:
    # I-JSON (RFC 7493), which RFC 8785 builds on, has no lone surrogates; other parsers would
    # replace them with U+FFFD, so accepting one is a parser differential.
    assert refused(f'{{"context": "{escape}"}}').code == "input.invalid"


def test_an_escaped_surrogate_pair_is_one_character() -> None:
    assert parse('"\\ud83d\\ude02"') == "\U0001f602"


@pytest.mark.parametrize("document", [b"", b"{", b"{'a': 1}", b"[1,]", b"\xef\xbb\xbf{}", b"{} {}", b"01"])
def test_malformed_json_is_refused_with_input_invalid(document: bytes) -> None:
    assert refused(document).code == "input.invalid"


def test_error_serialises_to_the_api_error_shape() -> None:
    body = refused(b'{"a": 1, "a": 1}').to_json()
    assert body["error"]["code"] == "input.duplicate_key"
    assert body["error"]["detail"] == {"key": "a"}


# --- check_value: the same limits for values built in code -------------------------------------


def check_refused(value: object) -> RequestError:
    with pytest.raises(RequestError) as caught:
        check_value(value)
    return caught.value


def test_check_value_accepts_json_shaped_values() -> None:
    check_value({"a": [1, 2.5, "x", True, None, {"b": []}], "t": (1, 2)})


@pytest.mark.parametrize("key", [1, 1.5, None, True, ("a",)])
def test_check_value_refuses_non_string_keys(key: object) -> None:
    error = check_refused({"ok": {key: 1}})
    assert error.code == "input.invalid"
    assert "key" in error.message


@pytest.mark.parametrize("value", [{1, 2}, frozenset(), b"bytes", object(), 1j])
def test_check_value_refuses_non_json_types(value: object) -> None:
    error = check_refused({"params": [value]})
    assert error.code == "input.invalid"
    assert "$.params[0]" in error.message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_check_value_refuses_nan_and_infinite_floats(value: float) -> None:
    assert check_refused({"amount": value}).code == "input.invalid"


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER + 1, -(MAX_SAFE_INTEGER + 1)])
def test_check_value_refuses_unsafe_integers(value: int) -> None:
    assert check_refused([value]).code == "input.invalid"


def test_check_value_refuses_deep_nesting_and_long_strings() -> None:
    deep: object = []
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert check_refused(deep).code == "input.too_deep"
    assert check_refused({"s": "x" * (MAX_STRING_BYTES + 1)}).code == "input.too_large"


def test_check_value_refuses_a_lone_surrogate() -> None:
    assert check_refused({"s": "\udc00"}).code == "input.invalid"


def test_check_value_names_the_path_of_the_problem() -> None:
    error = check_refused({"params": {"items": [1, 2, math.nan]}})
    assert "$.params.items[2]" in error.message
