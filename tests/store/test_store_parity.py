"""One gate story on SQLite and on PostgreSQL: the records, the audit leaves and the tree come out identical."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import FixedClock, ceo_payment, code_of, spec_of
from interlock.core.errors import InterlockError
from interlock.core.policy import Policy
from interlock.credentials import Credentials
from interlock.gate import Gate
from interlock.keys import KeyRing
from interlock.store.base import Store

from .conftest import STORE_FACTORIES


def _ids() -> Callable[[str], str]:
    counter = itertools.count()
    return lambda prefix: f"{prefix}_{next(counter):04d}"


def _story(store: Store, policy: Policy, keys: KeyRing) -> dict[str, Any]:
    """Submit, approve (with one refusal), consume, report, a denied request, credentials, a checkpoint."""
    clock = FixedClock()
    gate = Gate(store, policy, keys, clock=clock, ids=_ids())
    document = ceo_payment()
    pending = gate.submit(document)
    code = code_of(gate, pending.request_id)
    gate.decide_approval(pending.request_id, "user:alice", "email", binding_code=code)
    try:
        gate.decide_approval(pending.request_id, "user:ceo", "email", binding_code=code)  # not independent
    except InterlockError:
        pass
    clock.advance(seconds=30)
    approved = gate.decide_approval(pending.request_id, "user:bob", "phone", binding_code=code)
    assert approved.grant
    gate.consume(approved.grant, "payments-service", spec_of(document))
    consumed = store.get_request(pending.request_id).grant
    assert consumed is not None
    gate.report(consumed.jti, True, "paid")
    denied = gate.submit({**document, "action": "payments.unknown"})
    credentials = Credentials(store, clock, _ids())
    issued = credentials.add("approver", "user:carol")
    credentials.revoke(issued.record.id, "approver")
    checkpoint = gate.ledger.checkpoint()
    assert checkpoint is not None
    return {
        "records": [store.get_request(pending.request_id), store.get_request(denied.request_id)],
        # Tokens are random: all else about a credential must match.
        "credentials": [dataclasses.replace(c, token_sha256="") for c in store.list_credentials()],
        "leaves": [entry.leaf for entry in store.audit_entries()],
        "tree": (checkpoint.size, checkpoint.root, gate.ledger.inclusion_proof(3)),
        "verified": gate.verify_audit().ok,
    }


def test_sqlite_and_postgresql_keep_the_same_story_identically(tmp_path: Path, seed_policy: Policy) -> None:
    keys = KeyRing.generate()
    with STORE_FACTORIES["sqlite"](tmp_path) as sqlite, STORE_FACTORIES["postgresql"](tmp_path) as postgresql:
        on_sqlite = _story(sqlite, seed_policy, keys)
        on_postgresql = _story(postgresql, seed_policy, keys)

    assert on_sqlite["verified"] and on_postgresql["verified"]
    assert on_postgresql == on_sqlite
