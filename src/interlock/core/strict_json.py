"""Strict JSON: the one parser every untrusted document goes through (parser differentials are a bypass)."""

from __future__ import annotations

import json
from typing import Any

from interlock.core.errors import RequestError

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_STRING_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_SAFE_INTEGER = 2**53 - 1
_ASCII_SAFE_LENGTH = MAX_STRING_BYTES


def _reject_constant(name: str) -> Any:
    raise RequestError("input.invalid", f"`{name}` is not valid JSON")


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise RequestError("input.duplicate_key", f"duplicate key `{key}`", key=key)
    return result


def _parse_int(text: str) -> int:
    # Refuse by length first: int() of a string over 4300 digits raises a bare ValueError (a crash).
    if len(text.lstrip("-")) > len(str(MAX_SAFE_INTEGER)):
        raise RequestError("input.invalid", f"integer `{text[:40]}` is beyond ±2^53-1")
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:
        raise RequestError("input.invalid", f"integer `{text[:40]}` is beyond ±2^53-1")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise RequestError("input.invalid", f"number `{text[:40]}` is out of range")
    return value


def parse(document: bytes | str, *, max_bytes: int = MAX_DOCUMENT_BYTES, check: bool = True) -> Any:
    """Parse untrusted JSON, refusing duplicate keys, NaN/Infinity, unsafe integers and oversize input.

    `check=False` leaves the string, depth and U+0000 checks of `check_value` to the caller (a model
    validator that runs them anyway), so a request is walked once.
    """
    try:
        raw = document.encode() if isinstance(document, str) else document
    except UnicodeEncodeError as exc:
        raise RequestError("input.invalid", f"document is not Unicode text: {exc.reason}") from None
    if len(raw) > max_bytes:
        raise RequestError("input.too_large", f"document is {len(raw)} bytes, over the {max_bytes} byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError("input.invalid", f"document is not UTF-8: {exc.reason}") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs_without_duplicates,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except json.JSONDecodeError as exc:
        raise RequestError("input.invalid", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise RequestError("input.too_deep", f"nesting deeper than {MAX_DEPTH}") from None
    if check:
        check_value(value)
    return value


def check_value(value: Any, *, path: str = "$") -> None:
    """Check a JSON-shaped Python value against the same limits as `parse` (for values built in code)."""
    if not _is_clean(value, 0):
        _check(value, path, 0)  # walk again, naming the path of the first problem


def _is_clean(value: Any, depth: int) -> bool:
    """The fast walk of `_check`: the same rules, no paths, no messages."""
    kind = type(value)
    if kind is str:
        fast = "\x00" not in value and len(value) <= _ASCII_SAFE_LENGTH and value.isascii()
        return bool(fast) or _string_ok(value)
    if kind is int:
        return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    if value is None or kind is bool:
        return True
    if kind is float:
        return bool(value - value == 0.0)  # false for NaN and ±inf
    if depth >= MAX_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _is_clean(key, depth) or not _is_clean(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:
            if not _is_clean(item, depth + 1):
                return False
        return True
    return False


def _string_ok(value: str) -> bool:
    try:
        return "\x00" not in value and len(value.encode("utf-8")) <= MAX_STRING_BYTES
    except UnicodeEncodeError:
        return False


def _check(value: Any, path: str, depth: int) -> None:
    # `depth` counts the containers around `value`; a container at depth 32 would be the 33rd level.
    if depth >= MAX_DEPTH and isinstance(value, (dict, list, tuple)):
        raise RequestError("input.too_deep", f"nesting deeper than {MAX_DEPTH} at `{path}`")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise RequestError("input.invalid", f"integer at `{path}` is beyond ±2^53-1")
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise RequestError("input.invalid", f"number at `{path}` is NaN or infinite")
        return
    if isinstance(value, str):
        if "\x00" in value:
            # The CEL engine cuts strings at U+0000: a value it would judge shorter than the grant binds
            # is a parser differential, so it is refused at the door (INVARIANT 8).
            raise RequestError("input.invalid", f"string at `{path}` contains U+0000")
        # I-JSON (RFC 7493 §2.1), which RFC 8785 requires: a lone surrogate is not a character.
        try:
            size = len(value) if value.isascii() else len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise RequestError("input.invalid", f"string at `{path}` contains a lone surrogate") from None
        if size > MAX_STRING_BYTES:
            raise RequestError("input.too_large", f"string at `{path}` is over {MAX_STRING_BYTES} bytes")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise RequestError("input.invalid", f"non-string key `{key!r}` at `{path}`")
            _check(key, f"{path}.<key>", depth + 1)
            _check(item, f"{path}.{key}", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth + 1)
        return
    raise RequestError("input.invalid", f"value at `{path}` is a {type(value).__name__}, not JSON")
