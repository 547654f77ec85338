"""Interlock's own paths: (a1) the pure decision, (a2) `Gate.submit` on a real SQLite file, (d) issue → consume."""

from __future__ import annotations

from pathlib import Path

from bench.common import ACTION_BYTES, EXECUTOR, NOW, POLICY_YAML, REQUEST_BYTES, changed_requests, require
from bench.measure import Subject
from interlock.core.action import parse_request
from interlock.core.decision import decide
from interlock.core.policy import Policy, load_policy
from interlock.gate import Gate
from interlock.keys import KeyRing
from interlock.store.sqlite import SqliteStore


def decision_subject(key: str, label: str, policy: Policy) -> Subject:
    """`decide(policy, request, now)` on the already-parsed request: no I/O, no parsing."""
    request = parse_request(REQUEST_BYTES)
    require(decide(policy, request, NOW).outcome == "allow", f"{key}: Interlock does not allow the request")
    for name, changed in changed_requests().items():
        outcome = decide(policy, parse_request(changed), NOW).outcome
        require(outcome == "deny", f"{key}: Interlock says {outcome} for the changed request ({name})")
    return Subject(key, label, lambda: decide(policy, request, NOW))


def open_gate(directory: Path) -> Gate:
    """A gate as `interlock` builds one: SQLite file (WAL, synchronous=FULL), keys on disk, real clock."""
    store = SqliteStore(directory / "interlock.db")
    return Gate(store, load_policy(POLICY_YAML), KeyRing.load_or_create(directory / "keys"))


def submit_subject(gate: Gate) -> Subject:
    """(a2) parse, digest, decide, sign the grant, commit request + grant + audit entries, read the state back."""
    state = gate.submit(REQUEST_BYTES)
    require(state.outcome == "allowed" and bool(state.grant), f"a2: Gate.submit says {state.outcome}")
    denied = gate.submit(changed_requests()["amount 5000"])
    require(denied.outcome == "denied", f"a2: Gate.submit says {denied.outcome} for a changed request")
    return Subject("a2", "Gate.submit(bytes), allow path, SQLite FULL", lambda: gate.submit(REQUEST_BYTES))


def round_trip_subject(gate: Gate) -> Subject:
    """(d) Gate.submit of the allowed request (issues the grant), then Gate.consume of that grant."""
    probe = gate.consume(gate.submit(REQUEST_BYTES).grant or "", EXECUTOR, ACTION_BYTES)
    require(probe.executor == EXECUTOR, "d: consume did not succeed")

    def round_trip() -> None:
        grant = gate.submit(REQUEST_BYTES).grant
        gate.consume(grant or "", EXECUTOR, ACTION_BYTES)

    return Subject("d", "grant round trip: submit → consume", round_trip)


def consume_subject(gate: Gate) -> Subject:
    """(d) Gate.consume alone: verify the JWT, recompute the digest, mark used once, audit — grants issued untimed."""
    grants: list[str] = []

    def prepare(n: int) -> None:
        grants.clear()
        grants.extend(gate.submit(REQUEST_BYTES).grant or "" for _ in range(n))
        grants.reverse()

    def consume() -> None:
        gate.consume(grants.pop(), EXECUTOR, ACTION_BYTES)

    return Subject("d.consume", "Gate.consume alone", consume, prepare=prepare)
