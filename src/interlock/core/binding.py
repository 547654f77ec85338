"""Binding codes: a short code tying an approval to one request, in the manner of CIBA's `binding_message`.

The requester is given the code with its request and tells it to the approver over their own channel;
an approver of a sensitive action must type it, so that a look-alike request submitted alongside (which
has another code) cannot be approved by mistake. The code is derived, not stored: anyone holding the
request id and the action digest computes the same one. It is a check on attention, not a secret.
"""

from __future__ import annotations

import hashlib
import hmac

# No 0/O, 1/I/L: letters and digits a person cannot confuse when reading a code aloud or typing it.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH = 6
_IGNORED = str.maketrans("", "", "- \t")


def binding_code(request_id: str, digest: str) -> str:
    """The request's code, e.g. `K7M-Q2P`: SHA-256 of `request_id:digest`, its first 8 bytes read in base 31."""
    number = int.from_bytes(hashlib.sha256(f"{request_id}:{digest}".encode()).digest()[:8], "big")
    symbols = []
    # 31**6 is under 2**30; reducing a 64-bit number leaves a bias far below one in a billion per symbol.
    for _ in range(LENGTH):
        number, index = divmod(number, len(ALPHABET))
        symbols.append(ALPHABET[index])
    code = "".join(symbols)
    return f"{code[:3]}-{code[3:]}"


def normalize(code: str) -> str:
    """A typed code as compared: upper case, without dashes and spaces."""
    return code.translate(_IGNORED).upper()


def matches(request_id: str, digest: str, typed: str | None) -> bool:
    """Whether `typed` is this request's code, ignoring case, dashes and spaces."""
    if not isinstance(typed, str) or len(typed) > 64:
        return False
    return hmac.compare_digest(normalize(typed).encode(), normalize(binding_code(request_id, digest)).encode())
