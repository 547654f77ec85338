"""RFC 8785 canonical JSON, with a fast path for the values requests are made of.

The `rfc8785` package is the reference, written in Python. For values without floats, with integers
in the I-JSON range and object keys below U+E000, the standard library's encoder with sorted keys
produces the same bytes (the same escapes, and code-point order equals UTF-16 order there), several
times faster; everything else goes to the reference. A differential property test holds the two equal.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_MAX_SAFE_INTEGER = 2**53 - 1
_UTF16_ORDER_SAFE = "\ue000"  # keys of characters below this sort the same by code point and by UTF-16 unit


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical form of a JSON value, as UTF-8 bytes."""
    if _fast_path_applies(value):
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        except (UnicodeEncodeError, ValueError, TypeError):
            pass  # the reference decides, and raises its own error for what is not JSON
    return rfc8785.dumps(value)


def _fast_path_applies(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or max(key, default="") < _UTF16_ORDER_SAFE):
                return False
            if not _fast_path_applies(item):
                return False
        return True
    if kind is list:
        return all(_fast_path_applies(item) for item in value)
    return False  # floats (ECMAScript number formatting), tuples, anything else: the reference
