"""Races on the Store contract, run by many threads spread over one or more stores (one store per gate node)."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from interlock.audit.log import verify
from interlock.core.conditions import History
from interlock.core.errors import InterlockError
from interlock.store.base import AuditEvent, GrantRecord, LoadRequest, NewRequest, RequestChange, RequestRecord, Store

from .test_store_contract import DAY_SECONDS, T0, action_request, approval, create, decision, event, grant


def run_together(stores: Sequence[Store], contenders: int, work: Callable[[Store, int], Any]) -> list[Any]:
    """`work(store, n)` for n in range(contenders), each on its own thread, released at once; stores taken in
    turn. Returns each outcome: the result, or the reason code of an InterlockError."""
    barrier = threading.Barrier(contenders)
    outcomes: list[Any] = [None] * contenders
    failures: list[BaseException] = []

    def contender(n: int) -> None:
        barrier.wait(timeout=30)
        try:
            outcomes[n] = work(stores[n % len(stores)], n)
        except InterlockError as refusal:
            outcomes[n] = refusal.code
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a contender hung"
    if failures:
        raise failures[0]
    return outcomes


def consume_race(stores: Sequence[Store], contenders: int) -> Counter[Any]:
    """Many contenders consume one grant; returns how many got each outcome."""
    create(stores[0], "req-1", with_grant="grt-1")

    def consume(store: Store, n: int) -> str:
        def check(record: GrantRecord, load: LoadRequest) -> list[AuditEvent]:
            load()  # read the request and history too, as a re-decision does
            return [event("grant.consumed", record.request_id, jti=record.jti, by=n)]

        store.consume_grant("grt-1", check, T0)
        return "consumed"

    return Counter(run_together(stores, contenders, consume))


def append_race(stores: Sequence[Store], writers: int, batches: int) -> list[dict[str, Any]]:
    """Each writer appends `batches` batches of two entries; returns the log's leaves, in log order."""

    def append(store: Store, n: int) -> None:
        for batch in range(batches):
            store.append_audit([event("first", None, writer=n, batch=batch), event("second", None, writer=n,
                                                                                     batch=batch)])

    run_together(stores, writers, append)
    entries = list(stores[0].audit_entries())
    result = verify(entries)
    assert result.ok, result.problems
    return [json.loads(entry.leaf) for entry in entries]


def velocity_race(stores: Sequence[Store], contenders: int, limit: int) -> Counter[Any]:
    """Contenders submit for one principal under a limit of `limit` a day; returns how many were allowed."""
    ids = itertools.count()
    request = action_request(amount=10)

    def submit(store: Store, n: int) -> str:
        def decide(history: History) -> NewRequest:
            status = "allowed" if history.count("payments.transfer", DAY_SECONDS) < limit else "denied"
            return NewRequest(status, decision(status), None,  # type: ignore[arg-type]
                              [event("request.submitted", f"req-{n}")])

        return store.create_request(f"req-{n}-{next(ids)}", request, request.digest(), T0, decide).status

    return Counter(run_together(stores, contenders, submit))


def quorum_race(stores: Sequence[Store], approvers: int, quorum: int) -> tuple[Counter[Any], RequestRecord]:
    """Approvers approve one request at once; the one who sees the quorum met issues the grant."""
    request = action_request()
    create(stores[0], "req-1", request, status="pending_approval")

    def approve(store: Store, n: int) -> str:
        def change(record: RequestRecord) -> RequestChange:
            vote = approval("req-1", f"user:{n}")
            if record.status != "pending_approval":
                return RequestChange([event("approval.approved", "req-1", by=n)], approval=vote)
            if len(record.approvals) + 1 < quorum:
                return RequestChange([event("approval.approved", "req-1", by=n)], approval=vote)
            return RequestChange([event("approval.approved", "req-1", by=n), event("grant.issued", "req-1")],
                                 status="approved", approval=vote, grant=grant("grt-1", "req-1", record.digest))

        result = store.update_request("req-1", change)
        return "issued" if result.grant else "voted"

    outcomes = Counter(run_together(stores, approvers, approve))
    return outcomes, stores[0].get_request("req-1")
