"""The Store contract for `pending_requests`: what the approver inbox lists, on every backend."""

from __future__ import annotations

import datetime

from interlock.store.base import RequestChange, Store

from .test_store_contract import T0, approval, create, event

MINUTE = datetime.timedelta(minutes=1)


def test_pending_requests_are_those_waiting_and_not_expired_oldest_first_with_approvals(any_store: Store) -> None:
    create(any_store, "req-late", status="pending_approval", at=T0 + MINUTE, expires_at=T0 + 15 * MINUTE)
    create(any_store, "req-early", status="pending_approval", at=T0, expires_at=T0 + 15 * MINUTE)
    create(any_store, "req-expiring", status="pending_approval", at=T0, expires_at=T0 + 5 * MINUTE)
    create(any_store, "req-allowed", status="allowed", with_grant="grt-1")
    create(any_store, "req-denied", status="denied")
    create(any_store, "req-rejected", status="pending_approval", expires_at=T0 + 15 * MINUTE)
    any_store.update_request("req-rejected", lambda _: RequestChange([event("approval.rejected", "req-rejected")],
                                                                     status="rejected"))
    any_store.update_request("req-late", lambda _: RequestChange([event("approval.approved", "req-late")],
                                                                 approval=approval("req-late", "user:alice")))

    assert [r.id for r in any_store.pending_requests(T0 + 2 * MINUTE)] == ["req-early", "req-expiring", "req-late"]
    later = any_store.pending_requests(T0 + 5 * MINUTE)  # an approval window closes at its expiry, exactly
    assert [r.id for r in later] == ["req-early", "req-late"]
    assert [a.approver_id for a in later[1].approvals] == ["user:alice"]
    assert any_store.pending_requests(T0 + 15 * MINUTE) == []
