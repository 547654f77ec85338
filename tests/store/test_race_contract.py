"""The Store contract under contention: many threads on one store, on every backend (tests/store/races.py)."""

from __future__ import annotations

from interlock.store.base import Store

from .races import append_race, consume_race, quorum_race, velocity_race
from .test_store_contract import audit_kinds

THREADS = 12


def test_sixteen_threads_consume_one_grant_once(any_store: Store) -> None:
    outcomes = consume_race([any_store], 16)

    assert outcomes == {"consumed": 1, "grant.already_used": 15}
    assert audit_kinds(any_store).count("grant.consumed") == 1


def test_concurrent_appends_get_every_index_once_in_one_verifiable_log(any_store: Store) -> None:
    leaves = append_race([any_store], THREADS, 5)

    assert [leaf["index"] for leaf in leaves] == list(range(THREADS * 5 * 2))
    # A batch is appended whole: its two entries are neighbours, in order.
    for first, second in zip(leaves[::2], leaves[1::2], strict=True):
        assert (first["kind"], second["kind"]) == ("first", "second")
        assert first["data"] == second["data"]


def test_concurrent_submits_for_one_principal_cannot_all_pass_a_velocity_limit(any_store: Store) -> None:
    assert velocity_race([any_store], THREADS, limit=3) == {"allowed": 3, "denied": THREADS - 3}


def test_concurrent_approvals_of_one_request_each_see_the_ones_before(any_store: Store) -> None:
    outcomes, record = quorum_race([any_store], THREADS, quorum=2)

    # Exactly one approver saw the quorum met and issued the one grant; nobody's vote was lost.
    assert outcomes == {"issued": 1, "voted": THREADS - 1}
    assert record.status == "approved" and record.grant is not None
    assert len(record.approvals) == THREADS
