"""The Python guard end to end: a decorated function behind a real Gate on a real SQLite file."""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from interlock.core.errors import GrantError, RequestError
from interlock.core.policy import load_policy
from interlock.enforce.guard import guard
from interlock.gate import Gate
from interlock.keys import KeyRing
from interlock.store.sqlite import SqliteStore

KNOWN = "DE89370400440532013000"
OTHER = "GB33BUKB20201555555555"


def payment(**params: Any) -> dict[str, Any]:
    """A small transfer to a known recipient: the seed policy allows it, so submitting it yields a grant."""
    return {
        "principal": {"id": "agent:finance-assistant", "kind": "agent", "attributes": {"known_recipients": [KNOWN]}},
        "action": "payments.transfer",
        "resource": "account:treasury",
        "params": {"amount": 250, "currency": "EUR", "recipient": KNOWN, **params},
        "channel": "api",
    }


def grant_for(gate: Gate, **params: Any) -> tuple[str, str]:
    """(grant, request id) for a transfer with these params."""
    state = gate.submit(payment(**params))
    assert state.outcome == "allowed", state
    assert state.grant
    return state.grant, state.request_id


def grant_record(gate: Gate, request_id: str) -> Any:
    grant = gate.store.get_request(request_id).grant
    assert grant is not None
    return grant


def audit_kinds(gate: Gate) -> list[str]:
    return [json.loads(entry.leaf)["kind"] for entry in gate.store.audit_entries()]


class Bank:
    """The protected side effect: every call is recorded, so 'never ran' and 'ran once' are observable."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_with: Exception | None = None

    def pay(self, amount: int, currency: str, recipient: str) -> str:
        self.calls.append((amount, currency, recipient))
        if self.fail_with:
            raise self.fail_with
        return f"paid {amount} {currency} to {recipient}"


@pytest.fixture
def bank() -> Bank:
    return Bank()


@pytest.fixture
def transfer(gate: Gate, bank: Bank) -> Any:
    @guard("payments.transfer", executor="payments-service", gate=gate, resource="account:treasury")
    def transfer(amount: int, currency: str, recipient: str) -> str:
        """Move money."""
        return bank.pay(amount, currency, recipient)

    return transfer


@pytest.fixture
def transfer_async(gate: Gate, bank: Bank) -> Any:
    @guard("payments.transfer", executor="payments-service", gate=gate, resource="account:treasury")
    async def transfer(amount: int, currency: str, recipient: str) -> str:
        return bank.pay(amount, currency, recipient)

    return transfer


# --- the plain form ---------------------------------------------------------------------------


def test_without_a_grant_the_function_never_runs(gate: Gate, transfer: Any, bank: Bank) -> None:
    entries = len(audit_kinds(gate))
    for kwargs in ({}, {"grant": ""}, {"grant": None}):
        with pytest.raises(GrantError) as refused:
            transfer(250, "EUR", KNOWN, **kwargs)
        assert refused.value.code == "grant.missing"
    assert bank.calls == []
    assert len(audit_kinds(gate)) == entries


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((251, "EUR", KNOWN), {}),
        ((250, "USD", KNOWN), {}),
        ((250, "EUR", OTHER), {}),
        ((250.5, "EUR", KNOWN), {}),
        ((), {"amount": 25, "currency": "EUR", "recipient": KNOWN}),
    ],
    ids=["amount", "currency", "recipient", "float-amount", "keywords-other-amount"],
)
def test_a_grant_for_other_arguments_is_refused_and_stays_usable(
    gate: Gate, transfer: Any, bank: Bank, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    grant, request_id = grant_for(gate)
    with pytest.raises(GrantError) as refused:
        transfer(*args, **kwargs, grant=grant)
    assert refused.value.code == "grant.digest_mismatch"
    assert bank.calls == []
    assert grant_record(gate, request_id).consumed_at is None
    assert audit_kinds(gate)[-1] == "grant.refused"

    assert transfer(amount=250, recipient=KNOWN, currency="EUR", grant=grant) == f"paid 250 EUR to {KNOWN}"
    assert bank.calls == [(250, "EUR", KNOWN)]


def test_the_right_grant_runs_the_function_once_and_reports_success(gate: Gate, transfer: Any, bank: Bank) -> None:
    grant, request_id = grant_for(gate)
    assert transfer(250, "EUR", KNOWN, grant=grant) == f"paid 250 EUR to {KNOWN}"
    assert bank.calls == [(250, "EUR", KNOWN)]

    record = grant_record(gate, request_id)
    assert record.consumed_at is not None
    assert record.executor == "payments-service"
    assert record.result == "succeeded"
    assert gate.status(request_id).result == "succeeded"

    with pytest.raises(GrantError) as replay:
        transfer(250, "EUR", KNOWN, grant=grant)
    assert replay.value.code == "grant.already_used"
    assert bank.calls == [(250, "EUR", KNOWN)], "a replay never reaches the function"
    assert audit_kinds(gate)[-3:] == ["grant.consumed", "execution.reported", "grant.refused"]
    assert gate.verify_audit().ok


def test_a_failure_is_reported_and_the_exception_propagates(gate: Gate, transfer: Any, bank: Bank) -> None:
    grant, request_id = grant_for(gate)
    bank.fail_with = ConnectionError("bank said no")
    with pytest.raises(ConnectionError, match="bank said no"):
        transfer(250, "EUR", KNOWN, grant=grant)
    assert len(bank.calls) == 1
    record = grant_record(gate, request_id)
    assert record.result == "failed"
    assert "bank said no" in record.result_detail
    assert gate.status(request_id).result == "failed"

    bank.fail_with = None
    with pytest.raises(GrantError) as retry:
        transfer(250, "EUR", KNOWN, grant=grant)
    assert retry.value.code == "grant.already_used", "a failed run used the grant up"
    assert len(bank.calls) == 1


def test_arguments_that_do_not_bind_are_refused_before_the_grant_is_touched(
    gate: Gate, transfer: Any, bank: Bank
) -> None:
    grant, request_id = grant_for(gate)
    for args, kwargs in (((250, "EUR"), {}), ((250, "EUR", KNOWN, "extra"), {}), ((250, "EUR", KNOWN), {"memo": 1})):
        with pytest.raises(RequestError) as refused:
            transfer(*args, **kwargs, grant=grant)
        assert refused.value.code == "input.invalid"
    assert bank.calls == []
    assert grant_record(gate, request_id).consumed_at is None


def test_the_guard_keeps_the_function_signature_and_refuses_a_grant_parameter(gate: Gate, transfer: Any) -> None:
    assert transfer.__name__ == "transfer"
    assert transfer.__doc__ == "Move money."
    assert list(inspect.signature(transfer).parameters) == ["amount", "currency", "recipient"]

    with pytest.raises(TypeError, match="grant"):
        @guard("payments.transfer", executor="payments-service", gate=gate, resource="account:treasury")
        def clumsy(amount: int, grant: str) -> None:
            raise AssertionError("never defined, never called")


# --- defaults, executors, a lazily found gate ---------------------------------------------------


@pytest.fixture
def open_gate(tmp_path: Path, clock: Any) -> Gate:
    """A real gate on its own SQLite file whose policy allows any transfer, whatever its params."""
    policy = load_policy(
        "version: 1\nexecutors:\n  payments.transfer: payments-service\n"
        "rules:\n  - id: any-transfer\n    action: payments.transfer\n    effect: allow\n"
    )
    store = SqliteStore(tmp_path / "open.db")
    yield Gate(store, policy, KeyRing.generate(), clock=clock)
    store.close()


def test_default_arguments_are_part_of_the_bound_params(open_gate: Gate, bank: Bank) -> None:
    @guard("payments.transfer", executor="payments-service", gate=open_gate, resource="account:treasury")
    def transfer(amount: int, currency: str = "EUR", recipient: str = KNOWN) -> str:
        return bank.pay(amount, currency, recipient)

    def grant(params: dict[str, Any]) -> str:
        state = open_gate.submit({**payment(), "params": params})
        assert state.outcome == "allowed" and state.grant
        return state.grant

    without_defaults = grant({"amount": 250})
    with pytest.raises(GrantError) as refused:
        transfer(250, grant=without_defaults)
    assert refused.value.code == "grant.digest_mismatch", "the defaults are bound into the params"

    other_default = grant({"amount": 250, "currency": "EUR", "recipient": OTHER})
    with pytest.raises(GrantError) as refused:
        transfer(250, grant=other_default)
    assert refused.value.code == "grant.digest_mismatch"
    assert bank.calls == []

    with_defaults = grant({"amount": 250, "currency": "EUR", "recipient": KNOWN})
    transfer(250, grant=with_defaults)
    assert bank.calls == [(250, "EUR", KNOWN)]
    # The grant for the other recipient was sound all along: it serves a call that names that recipient.
    transfer(250, "EUR", OTHER, grant=other_default)
    assert bank.calls[-1] == (250, "EUR", OTHER)


def test_a_grant_for_one_executor_is_refused_by_a_guard_for_another(gate: Gate, transfer: Any, bank: Bank) -> None:
    @guard("payments.transfer", executor="reporting-service", gate=gate, resource="account:treasury")
    def export(amount: int, currency: str, recipient: str) -> None:
        bank.pay(amount, currency, recipient)

    grant, request_id = grant_for(gate)
    with pytest.raises(GrantError) as refused:
        export(250, "EUR", KNOWN, grant=grant)
    assert refused.value.code == "grant.wrong_executor"
    assert bank.calls == []
    assert grant_record(gate, request_id).consumed_at is None
    transfer(250, "EUR", KNOWN, grant=grant)
    assert len(bank.calls) == 1


def test_a_grant_for_another_resource_or_action_is_refused(gate: Gate, bank: Bank) -> None:
    @guard("payments.transfer", executor="payments-service", gate=gate, resource="account:payroll")
    def from_payroll(amount: int, currency: str, recipient: str) -> None:
        bank.pay(amount, currency, recipient)

    @guard("payments.refund", executor="payments-service", gate=gate, resource="account:treasury")
    def refund(amount: int, currency: str, recipient: str) -> None:
        bank.pay(amount, currency, recipient)

    grant, _ = grant_for(gate)
    for guarded in (from_payroll, refund):
        with pytest.raises(GrantError) as refused:
            guarded(250, "EUR", KNOWN, grant=grant)
        assert refused.value.code == "grant.digest_mismatch"
    assert bank.calls == []


def test_the_resource_may_be_computed_from_the_params(gate: Gate, bank: Bank) -> None:
    @guard("payments.transfer", executor="payments-service", gate=gate,
           resource=lambda params: f"account:{params['source']}")
    def transfer(source: str, amount: int, currency: str, recipient: str) -> None:
        bank.pay(amount, currency, recipient)

    state = gate.submit({**payment(), "params": {"source": "treasury", "amount": 250, "currency": "EUR",
                                                 "recipient": KNOWN}})
    assert state.grant
    transfer("treasury", 250, "EUR", KNOWN, grant=state.grant)
    assert bank.calls == [(250, "EUR", KNOWN)]


def test_the_gate_may_be_a_zero_argument_callable_found_at_call_time(gate: Gate, bank: Bank) -> None:
    found: dict[str, Gate] = {}
    lookups: list[int] = []

    def current_gate() -> Gate:
        lookups.append(1)
        return found["gate"]

    @guard("payments.transfer", executor="payments-service", gate=current_gate, resource="account:treasury")
    def transfer(amount: int, currency: str, recipient: str) -> None:
        bank.pay(amount, currency, recipient)

    assert lookups == [], "decorating does not look the gate up"
    found["gate"] = gate
    grant, request_id = grant_for(gate)
    transfer(250, "EUR", KNOWN, grant=grant)
    assert bank.calls == [(250, "EUR", KNOWN)]
    assert lookups == [1]
    assert grant_record(gate, request_id).result == "succeeded"
    with pytest.raises(GrantError) as replay:
        transfer(250, "EUR", KNOWN, grant=grant)
    assert replay.value.code == "grant.already_used"


# --- the async form ---------------------------------------------------------------------------


def test_the_async_form_is_still_a_coroutine_function(transfer_async: Any) -> None:
    assert inspect.iscoroutinefunction(transfer_async)


def test_async_without_a_grant_or_with_one_for_other_arguments_never_runs(
    gate: Gate, transfer_async: Any, bank: Bank
) -> None:
    grant, request_id = grant_for(gate)

    async def attempts() -> list[str]:
        codes = []
        for kwargs in ({}, {"grant": grant}):
            try:
                await transfer_async(999, "EUR", KNOWN, **kwargs)
            except GrantError as refused:
                codes.append(refused.code)
        return codes

    assert asyncio.run(attempts()) == ["grant.missing", "grant.digest_mismatch"]
    assert bank.calls == []
    assert grant_record(gate, request_id).consumed_at is None


def test_async_runs_once_reports_success_and_refuses_a_replay(gate: Gate, transfer_async: Any, bank: Bank) -> None:
    grant, request_id = grant_for(gate)
    assert asyncio.run(transfer_async(250, "EUR", KNOWN, grant=grant)) == f"paid 250 EUR to {KNOWN}"
    assert bank.calls == [(250, "EUR", KNOWN)]
    assert gate.status(request_id).result == "succeeded"

    with pytest.raises(GrantError) as replay:
        asyncio.run(transfer_async(250, "EUR", KNOWN, grant=grant))
    assert replay.value.code == "grant.already_used"
    assert len(bank.calls) == 1


def test_async_failure_is_reported_and_propagates(gate: Gate, transfer_async: Any, bank: Bank) -> None:
    grant, request_id = grant_for(gate)
    bank.fail_with = TimeoutError("bank timed out")
    with pytest.raises(TimeoutError, match="bank timed out"):
        asyncio.run(transfer_async(250, "EUR", KNOWN, grant=grant))
    assert len(bank.calls) == 1
    record = grant_record(gate, request_id)
    assert record.result == "failed"
    assert "bank timed out" in record.result_detail


def test_async_guard_for_another_executor_refuses(gate: Gate, bank: Bank) -> None:
    @guard("payments.transfer", executor="reporting-service", gate=lambda: gate, resource="account:treasury")
    async def export(amount: int, currency: str, recipient: str) -> None:
        bank.pay(amount, currency, recipient)

    grant, _ = grant_for(gate)
    with pytest.raises(GrantError) as refused:
        asyncio.run(export(250, "EUR", KNOWN, grant=grant))
    assert refused.value.code == "grant.wrong_executor"
    assert bank.calls == []
