"""The honest path every attack starts from: the seed's CEO payment, approved by two finance approvers."""

from __future__ import annotations

import json
from typing import Any

from conftest import ceo_payment, code_of
from interlock.gate import Gate
from interlock.results import RequestState


def approved_ceo_payment(gate: Gate, **params: Any) -> tuple[dict[str, Any], RequestState]:
    """Submit the CEO payment (over chat) and approve it by alice (email) and bob (phone): a live grant."""
    document = ceo_payment(**params)
    pending = gate.submit(document)
    assert pending.outcome == "pending_approval", pending
    code = code_of(gate, pending.request_id)  # the requester tells it to the approvers
    gate.decide_approval(pending.request_id, "user:alice", "email", binding_code=code)
    state = gate.decide_approval(pending.request_id, "user:bob", "phone", binding_code=code)
    assert state.outcome == "approved" and state.grant, state
    return document, state


def audit_log(gate: Gate) -> list[dict[str, Any]]:
    """Every audit entry's leaf, parsed."""
    return [json.loads(entry.leaf) for entry in gate.store.audit_entries()]
