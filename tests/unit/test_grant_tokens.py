"""GrantTokens: a token this gate signed is checked by lookup once; everything else is verified in full."""

from __future__ import annotations

from typing import Any

import pytest

from interlock import grant_tokens
from interlock.core.errors import GrantError
from interlock.grant_tokens import GrantTokens
from interlock.keys import KeyRing

CLAIMS = {"iss": "interlock", "aud": "payments-service", "jti": "grt_1", "exp": 2_000_000_000,
          "authorization_details": [{"type": "interlock_action", "digest": "d" * 64}]}


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens that went through the full JWS verification."""
    checked: list[str] = []
    full = grant_tokens.verify

    def counted(token: str, keys: KeyRing) -> dict[str, Any]:
        checked.append(token)
        return full(token, keys)

    monkeypatch.setattr(grant_tokens, "verify", counted)
    return checked


def test_a_token_signed_here_is_looked_up_once_then_verified_in_full(full_checks: list[str]) -> None:
    tokens = GrantTokens(KeyRing.generate())
    claims = {**CLAIMS}
    token = tokens.sign(claims)
    claims["aud"] = "changed after signing"  # the caller's dict is not what was signed
    assert tokens.verify(token) == CLAIMS
    assert full_checks == []
    assert tokens.verify(token) == CLAIMS  # a second presentation: the store refuses it; the signature still holds
    assert full_checks == [token]


@pytest.mark.parametrize("part", [1, 2])
def test_a_token_changed_after_signing_is_verified_in_full_and_refused(full_checks: list[str], part: int) -> None:
    tokens = GrantTokens(KeyRing.generate())
    token = tokens.sign({**CLAIMS})
    parts = token.split(".")
    parts[part] = ("A" if parts[part][0] != "A" else "B") + parts[part][1:]
    forged = ".".join(parts)
    with pytest.raises(GrantError) as refused:
        tokens.verify(forged)
    assert refused.value.code in ("grant.bad_signature", "grant.malformed")
    assert full_checks == [forged]
    assert tokens.verify(token) == CLAIMS  # the genuine one is still remembered


def test_a_token_another_ring_signed_is_not_vouched_for() -> None:
    token = GrantTokens(KeyRing.generate()).sign({**CLAIMS})
    with pytest.raises(GrantError) as refused:
        GrantTokens(KeyRing.generate()).verify(token)
    assert refused.value.code == "grant.unknown_key"


def test_only_the_newest_tokens_are_remembered(full_checks: list[str]) -> None:
    tokens = GrantTokens(KeyRing.generate(), capacity=2)
    first, second, third = (tokens.sign({**CLAIMS, "jti": f"grt_{n}"}) for n in range(3))
    assert [tokens.verify(t)["jti"] for t in (third, second, first)] == ["grt_2", "grt_1", "grt_0"]
    assert full_checks == [first]


def test_what_is_not_a_string_is_refused_as_malformed() -> None:
    tokens = GrantTokens(KeyRing.generate())
    tokens.sign({**CLAIMS})
    with pytest.raises(GrantError) as refused:
        tokens.verify(None)  # type: ignore[arg-type]
    assert refused.value.code == "grant.malformed"
