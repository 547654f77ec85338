"""Shared fixtures: a fixed clock, a fresh SQLite home, the seed policy, and request builders."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from interlock.core.policy import Policy, load_policy
from interlock.gate import Gate
from interlock.keys import KeyRing
from interlock.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "examples" / "seed"
WEDNESDAY = datetime.datetime(2026, 11, 25, 9, 0, tzinfo=datetime.UTC)


class FixedClock:
    """A clock the test moves by hand; never sleep to wait for a state."""

    def __init__(self, now: datetime.datetime = WEDNESDAY) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += datetime.timedelta(**delta)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def seed_policy() -> Policy:
    return load_policy((SEED / "policy.yaml").read_bytes())


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "interlock.db")
    yield s
    s.close()


@pytest.fixture
def gate(store: SqliteStore, seed_policy: Policy, clock: FixedClock) -> Gate:
    return Gate(store, seed_policy, KeyRing.generate(), clock=clock)


def ceo_payment(**params: Any) -> dict[str, Any]:
    """The seed's first scenario: an agent paying on the CEO's word in chat."""
    return {
        "principal": {"id": "agent:finance-assistant", "kind": "agent",
                      "attributes": {"known_recipients": ["DE89370400440532013000"]}},
        "on_behalf_of": [{"id": "user:ceo", "kind": "human"}],
        "action": "payments.transfer",
        "resource": "account:treasury",
        "params": {"amount": 48000, "currency": "EUR", "recipient": "GB33BUKB20201555555555", **params},
        "channel": "chat",
        "context": {"ip": "203.0.113.7"},
        "justification": "CEO asked in chat",
    }


def code_of(gate: Gate, request_id: str) -> str | None:
    """The binding code the requester was given, as it would tell it to the approvers of a sensitive action."""
    return gate.status(request_id).binding_code


def spec_of(request: dict[str, Any]) -> dict[str, Any]:
    return {"action": request["action"], "resource": request["resource"], "params": request["params"]}
