"""The velocity history's arithmetic, on every backend: what counts toward a limit must not depend on the store."""

from __future__ import annotations

import pytest

from interlock.store.base import Store

from .test_store_contract import HOUR, T0, action_request, create, history_seen_at


def test_an_amount_sent_as_a_string_counts_as_its_number(any_store: Store) -> None:
    # Otherwise a requester could slip past a sum limit by quoting its amounts.
    for n, amount in enumerate(["250", " 12.5", "1e3", "-5", "7abc", "abc", True, False, None, [9], {"x": 9}, 30]):
        create(any_store, f"req-{n}", action_request(amount=amount), at=T0 - HOUR)

    assert history_seen_at(any_store, T0) == [(12, 250 + 12.5 + 1000 - 5 + 7 + 1 + 30)]


def test_a_parameter_name_that_is_not_one_is_refused(any_store: Store) -> None:
    with pytest.raises(ValueError, match="not a parameter name"):
        from interlock.core.conditions import History
        from interlock.store.base import NewRequest

        request = action_request()

        def decide(history: History) -> NewRequest:
            history.sum("payments.transfer", "amount') OR 1=1 --", 3600)
            raise AssertionError("unreachable")

        any_store.create_request("req-1", request, request.digest(), T0, decide)
