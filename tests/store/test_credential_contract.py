"""Bearer credentials on every store: a coroutine authenticates a token exactly as a thread does."""

from __future__ import annotations

import asyncio

import pytest

from conftest import FixedClock
from interlock.core.errors import AuthError
from interlock.credentials import Credentials
from interlock.store.base import Store


def _refusal(authenticate: object) -> str:
    with pytest.raises(AuthError) as refused:
        authenticate()  # type: ignore[operator]
    return refused.value.code


def test_a_token_authenticates_the_same_from_a_coroutine_and_from_a_thread(any_store: Store) -> None:
    credentials = Credentials(any_store, FixedClock())
    issued = credentials.add("principal", "agent:payer", "agent", {"team": "finance"})

    assert asyncio.run(credentials.authenticate_async(issued.token)) == credentials.authenticate(issued.token)

    unknown = "ilk_" + "A" * 43
    assert _refusal(lambda: asyncio.run(credentials.authenticate_async(unknown))) == "auth.invalid"
    assert _refusal(lambda: asyncio.run(credentials.authenticate_async("not-a-token"))) == "auth.invalid"
    assert _refusal(lambda: asyncio.run(credentials.authenticate_async(None))) == "auth.missing"
    credentials.revoke(issued.record.id)
    assert _refusal(lambda: asyncio.run(credentials.authenticate_async(issued.token))) == "auth.revoked"
    assert _refusal(lambda: credentials.authenticate(issued.token)) == "auth.revoked"
