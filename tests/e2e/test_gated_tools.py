"""`gated_tool` end to end: agent tools behind a real Gate on a real SQLite file, with the example's policy."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import threading
import typing
from pathlib import Path
from typing import Any

import pytest

from interlock import gated_tool
from interlock.client import RemoteGate
from interlock.core.errors import GrantError, RequestError
from interlock.enforce.tools import ToolRefusal, ToolRefused
from interlock.gate import Gate

from .served import seed_callers, seeded_home, serving

AGENT = {"id": "agent:assistant", "kind": "agent"}
CEO = [{"id": "user:ceo", "kind": "human"}]
SUPPLIER = "DE02100100100006820101"


@pytest.fixture
def gate(tools_gate: Gate) -> Gate:
    return tools_gate


class Bank:
    """The tools' side effects, recorded: 'never ran' and 'ran once' are observable."""

    def __init__(self) -> None:
        self.paid: list[tuple[int, str]] = []
        self.lookups: list[str] = []
        self.fail_with: BaseException | None = None
        self.hold: threading.Event | None = None
        self.entered = threading.Event()

    def pay(self, amount: int, recipient: str) -> str:
        self.paid.append((amount, recipient))
        self.entered.set()
        if self.hold is not None:
            assert self.hold.wait(30)
        if self.fail_with is not None:
            raise self.fail_with
        return f"paid {amount} to {recipient}"


@pytest.fixture
def bank() -> Bank:
    return Bank()


def tools(gate: Gate, bank: Bank, **options: Any) -> tuple[Any, Any]:
    """(lookup_balance, pay), gated as the agent acting for the CEO over chat."""
    settings: dict[str, Any] = {"gate": gate, "executor": "agent-tools", "agent": AGENT, "on_behalf_of": CEO,
                                "channel": "chat", **options}

    @gated_tool(**settings)
    def lookup_balance(account: str) -> str:
        """Look up the balance of an account."""
        bank.lookups.append(account)
        return f"{account}: 12000 EUR"

    @gated_tool(resource="account:treasury", **settings)
    def pay(amount: int, recipient: str, memo: str = "") -> str:
        """Pay `amount` EUR from the treasury to `recipient`."""
        return bank.pay(amount, recipient)

    return lookup_balance, pay


def approve(gate: Gate, refusal: ToolRefusal, approver: str = "user:alice") -> None:
    """An approver decides on the console, typing the binding code the agent's user relayed."""
    gate.decide_approval(refusal.data["request_id"], approver, "console", binding_code=refusal.data["binding_code"])


def audit(gate: Gate) -> list[dict[str, Any]]:
    return [json.loads(entry.leaf) for entry in gate.store.audit_entries()]


def audit_kinds(gate: Gate) -> list[str]:
    return [entry["kind"] for entry in audit(gate)]


def requests_made(gate: Gate) -> int:
    return audit_kinds(gate).count("request.decided")


def test_an_allowed_call_runs_once_and_its_result_is_reported(gate: Gate, bank: Bank) -> None:
    lookup_balance, _ = tools(gate, bank)
    assert lookup_balance("treasury") == "treasury: 12000 EUR"
    assert bank.lookups == ["treasury"]
    assert audit_kinds(gate) == ["request.decided", "grant.consumed", "execution.reported"]
    decided = audit(gate)[0]["data"]["request"]
    assert decided["action"] == "tool.lookup_balance" and decided["params"] == {"account": "treasury"}
    assert decided["principal"]["id"] == "agent:assistant" and decided["on_behalf_of"][0]["id"] == "user:ceo"
    assert (decided["channel"], decided["executor"]) == ("chat", "agent-tools")
    assert decided["resource"] == "tool:lookup_balance"


def test_a_denied_call_never_runs_and_the_model_reads_why(gate: Gate, bank: Bank) -> None:
    _, pay = tools(gate, bank)
    refused = pay(50, "blocked:shell-co")
    assert isinstance(refused, ToolRefusal) and refused.outcome == "denied" and refused.code == "policy.denied"
    assert "was not run" in refused and "no-payments-to-blocked" in refused
    _, pay_raising = tools(gate, bank, on_refusal="raise")
    with pytest.raises(ToolRefused) as raised:
        pay_raising(50, "blocked:shell-co")
    assert raised.value.code == "policy.denied" and "was not run" in raised.value.message
    assert bank.paid == []
    assert "grant.consumed" not in audit_kinds(gate)


def test_a_held_call_runs_once_approved_and_the_same_call_again_is_a_new_request(gate: Gate, bank: Bank) -> None:
    _, pay = tools(gate, bank)
    held = pay(4800, SUPPLIER)
    assert isinstance(held, ToolRefusal) and held.outcome == "pending_approval"
    assert held.code == "policy.approval_required" and "was NOT run" in held and held.data["binding_code"] in held
    assert held.data["approvers"][0]["approvers"] == ["user:alice", "user:bob"] and held.data["expires_at"]
    again = pay(4800, SUPPLIER)  # before anyone decided: the same request, the same answer
    assert again.data["request_id"] == held.request_id and bank.paid == []

    approve(gate, held)
    assert pay(4800, SUPPLIER) == f"paid 4800 to {SUPPLIER}"
    assert bank.paid == [(4800, SUPPLIER)]
    state = gate.status(held.data["request_id"])
    assert (state.consumed, state.result) == (True, "succeeded")

    anew = pay(4800, SUPPLIER)  # the approval is spent
    assert isinstance(anew, ToolRefusal) and anew.outcome == "pending_approval"
    assert anew.request_id != held.request_id and bank.paid == [(4800, SUPPLIER)]


def test_changed_arguments_after_approval_are_a_new_request_and_the_approved_call_still_waits(
    gate: Gate, bank: Bank
) -> None:
    _, pay = tools(gate, bank)
    held = pay(4800, SUPPLIER)
    approve(gate, held)
    for changed in (pay(4900, SUPPLIER), pay(4800, "GB33BUKB20201555555555"), pay(4800, SUPPLIER, memo="x")):
        assert isinstance(changed, ToolRefusal) and changed.outcome == "pending_approval"
        assert changed.request_id != held.request_id
    assert bank.paid == []
    # The approved call itself, once: by keyword, in any order, it binds to the same params.
    assert pay(recipient=SUPPLIER, amount=4800) == f"paid 4800 to {SUPPLIER}"
    assert bank.paid == [(4800, SUPPLIER)]


def test_rejected_and_expired_requests_end_and_the_next_call_is_a_new_request(gate: Gate, bank: Bank) -> None:
    _, pay = tools(gate, bank)
    held = pay(4800, SUPPLIER)
    gate.decide_approval(held.request_id, "user:bob", "console", reject=True, comment="not this one")
    ended = pay(4800, SUPPLIER)
    assert (ended.outcome, ended.code, ended.request_id) == ("rejected", "request.rejected", held.request_id)
    late = pay(4800, SUPPLIER)
    assert late.outcome == "pending_approval" and late.request_id != held.request_id
    gate.clock.now += datetime.timedelta(minutes=16)  # type: ignore[attr-defined]
    expired = pay(4800, SUPPLIER)
    assert (expired.outcome, expired.code) == ("expired", "approval.expired")
    assert bank.paid == []


def test_an_approved_grant_used_up_elsewhere_is_refused_and_forgotten(gate: Gate, bank: Bank) -> None:
    _, pay = tools(gate, bank)
    held = pay(4800, SUPPLIER)
    approve(gate, held)
    grant = gate.status(held.request_id).grant
    assert grant is not None
    spec = {"action": "tool.pay", "resource": "account:treasury",
            "params": {"amount": 4800, "recipient": SUPPLIER, "memo": ""}}
    gate.consume(grant, "agent-tools", spec)  # someone else holding the grant ran it
    used = pay(4800, SUPPLIER)
    assert (used.outcome, used.code) == ("refused", "grant.already_used") and "was not run" in used
    assert pay(4800, SUPPLIER).outcome == "pending_approval"
    assert bank.paid == []


def test_two_identical_calls_at_once_after_approval_run_the_tool_once(gate: Gate, bank: Bank) -> None:
    _, pay = tools(gate, bank)
    approve(gate, pay(4800, SUPPLIER))
    bank.hold = threading.Event()
    results: list[Any] = []
    start = threading.Barrier(2)

    def call() -> None:
        start.wait(10)
        results.append(pay(4800, SUPPLIER))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert bank.entered.wait(30)  # one of them runs; the other waits its turn or is already a new request
    bank.hold.set()
    for thread in threads:
        thread.join(30)
    assert bank.paid == [(4800, SUPPLIER)]
    outcomes = sorted(r.outcome if isinstance(r, ToolRefusal) else "ran" for r in results)
    assert outcomes == ["pending_approval", "ran"]


def test_an_exception_in_the_tool_is_raised_reported_failed_and_spends_the_grant(gate: Gate, bank: Bank) -> None:
    _, pay = tools(gate, bank)
    held = pay(4800, SUPPLIER)
    approve(gate, held)
    bank.fail_with = ConnectionError("bank API down")
    with pytest.raises(ConnectionError):
        pay(4800, SUPPLIER)
    state = gate.status(held.request_id)
    assert (state.consumed, state.result) == (True, "failed")
    bank.fail_with = None
    assert pay(4800, SUPPLIER).outcome == "pending_approval"  # a new request: never retried on the old grant
    assert bank.paid == [(4800, SUPPLIER)]


def test_an_interlock_error_raised_by_the_tool_itself_is_not_taken_for_a_refusal(gate: Gate) -> None:
    bank_error = GrantError("grant.expired", "the tool's own downstream grant expired")

    @gated_tool(gate=gate, executor="agent-tools", agent=AGENT)
    def lookup_balance(account: str) -> str:
        raise bank_error

    with pytest.raises(GrantError) as raised:
        lookup_balance("treasury")
    assert raised.value is bank_error
    assert audit_kinds(gate)[-1] == "execution.reported"


@pytest.mark.parametrize(("arguments", "code"), [
    ({"amount": datetime.date(2026, 1, 1)}, "input.invalid"),   # not JSON
    ({"amount": object()}, "input.invalid"),
    ({"amount": float("nan")}, "input.invalid"),
    ({"amount": 2**60}, "input.invalid"),                        # beyond ±2^53-1
    ({"amount": {1: "a"}}, "input.invalid"),                     # a non-string key
    ({"memo": "\x00"}, "input.invalid"),
    ({"memo": "x" * 70_000}, "input.too_large"),                 # over the strict parser's string limit
    ({"memo": ["y" * 60_000] * 5}, "input.too_large"),           # over max_argument_bytes
    ({"unknown": 1}, "input.invalid"),                            # does not bind to the signature
])
def test_bad_arguments_are_refused_with_a_reason_and_nothing_runs_or_is_submitted(
    gate: Gate, bank: Bank, arguments: dict[str, Any], code: str
) -> None:
    _, pay = tools(gate, bank)
    refused = pay(**{"amount": 10, "recipient": SUPPLIER, **arguments})
    assert isinstance(refused, ToolRefusal) and (refused.outcome, refused.code) == ("refused", code), refused
    assert refused.startswith(f"interlock: {code}: ")
    assert bank.paid == [] and requests_made(gate) == 0


def test_the_argument_bound_is_configurable(gate: Gate, bank: Bank) -> None:
    _, pay = tools(gate, bank, max_argument_bytes=64)
    assert pay(10, SUPPLIER, memo="m" * 64).code == "input.too_large"
    assert pay(10, SUPPLIER) == f"paid 10 to {SUPPLIER}"


def test_the_tool_runs_on_a_copy_of_the_arguments_the_grant_binds(gate: Gate) -> None:
    seen: list[Any] = []

    @gated_tool(gate=gate, executor="agent-tools", agent=AGENT, action="tool.lookup_balance")
    def lookup(account: str, tags: list[str]) -> None:
        seen.append(tags)

    tags = ["a"]
    lookup("treasury", tags)
    assert seen == [["a"]] and seen[0] is not tags


def test_framework_context_parameters_are_left_out_of_the_params(gate: Gate) -> None:
    class RunContext:  # what a framework injects: not JSON, not part of what is approved
        pass

    @gated_tool(gate=gate, executor="agent-tools", agent=AGENT, context_params=("ctx",))
    def lookup_balance(ctx: RunContext, account: str) -> str:
        return f"{type(ctx).__name__} {account}"

    assert lookup_balance(RunContext(), "treasury") == "RunContext treasury"
    decided = audit(gate)[0]["data"]["request"]
    assert decided["params"] == {"account": "treasury"}


def test_the_wrapper_keeps_what_frameworks_build_a_tool_schema_from(gate: Gate, bank: Bank) -> None:
    _, pay = tools(gate, bank)
    assert pay.__name__ == "pay" and pay.__doc__ == "Pay `amount` EUR from the treasury to `recipient`."
    assert list(inspect.signature(pay).parameters) == ["amount", "recipient", "memo"]
    assert typing.get_type_hints(pay) == {"amount": int, "recipient": str, "memo": str, "return": str}

    @gated_tool(gate=gate, executor="agent-tools", agent=AGENT)
    async def lookup_balance(account: str) -> str:
        return account

    assert inspect.iscoroutinefunction(lookup_balance) and not inspect.iscoroutinefunction(pay)


@pytest.mark.parametrize(("options", "message"), [
    ({"action": "no spaces"}, "not an action name"),
    ({"channel": "Chat!"}, "not a channel name"),
    ({"agent": {"id": "agent:x", "kind": "robot"}}, "not a principal"),
    ({"on_refusal": "ignore"}, "on_refusal"),
    ({"max_argument_bytes": 10**9}, "max_argument_bytes"),
    ({"context_params": ("nope",)}, "no parameter"),
    ({"executor": ""}, "executor"),
])
def test_a_bad_configuration_is_refused_when_the_tool_is_wrapped(
    gate: Gate, options: dict[str, Any], message: str
) -> None:
    settings = {"gate": gate, "executor": "agent-tools", "agent": AGENT, **options}
    with pytest.raises(RequestError) as refused:
        gated_tool(lambda account: account, **{"action": "tool.lookup_balance", **settings})
    assert refused.value.code == "input.invalid" and message in refused.value.message


def test_a_function_whose_name_is_no_action_name_needs_one(gate: Gate) -> None:
    with pytest.raises(RequestError, match="pass `action=`"):
        gated_tool(lambda account: account, gate=gate, executor="agent-tools")


def test_async_tools_are_gated_the_same_way(gate: Gate, bank: Bank) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    @gated_tool(gate=gate, executor="agent-tools", agent=AGENT, resource="account:treasury")
    async def pay(amount: int, recipient: str, memo: str = "") -> str:
        bank.paid.append((amount, recipient))
        entered.set()
        await release.wait()
        return "paid"

    async def body() -> None:
        assert (await pay(50, "blocked:shell-co")).outcome == "denied"
        held = await pay(4800, SUPPLIER)
        assert held.outcome == "pending_approval"
        approve(gate, held)
        first = asyncio.ensure_future(pay(4800, SUPPLIER))
        await entered.wait()
        second = asyncio.ensure_future(pay(4800, SUPPLIER))  # waits its turn, then is a new request
        release.set()
        results = await asyncio.gather(first, second)
        assert results[0] == "paid" and results[1].outcome == "pending_approval"
        assert (await pay(10, SUPPLIER, memo=datetime.date.today())).code == "input.invalid"  # type: ignore[arg-type]

    asyncio.run(body())
    assert bank.paid == [(4800, SUPPLIER)]


def test_a_cancelled_async_tool_is_reported_failed_and_its_grant_spent(gate: Gate) -> None:
    entered = asyncio.Event()

    @gated_tool(gate=gate, executor="agent-tools", agent=AGENT)
    async def lookup_balance(account: str) -> str:
        entered.set()
        await asyncio.Event().wait()  # never answers
        return account

    async def body() -> None:
        task = asyncio.ensure_future(lookup_balance("treasury"))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(body())
    request_id = audit(gate)[0]["request_id"]
    state = gate.status(request_id)
    assert (state.consumed, state.result) == (True, "failed")


@pytest.mark.slow
def test_a_tool_gated_through_interlock_serve_with_the_agent_and_executor_tokens(tmp_path: Path) -> None:
    home = seeded_home(tmp_path)
    token = seed_callers(home)
    known, other = "DE89370400440532013000", "GB33BUKB20201555555555"
    paid: list[tuple[int, str, str]] = []
    with serving(home) as url, RemoteGate(url, token["agent"]) as agent, \
            RemoteGate(url, token["payments"]) as payments, RemoteGate(url, token["alice"]) as alice, \
            RemoteGate(url, token["bob"]) as bob:

        # No `agent=`: the server takes the requester from the agent's token.
        @gated_tool(gate=agent, executor_gate=payments, executor="payments-service", action="payments.transfer",
                    resource="account:treasury", on_behalf_of=CEO, channel="chat")
        def transfer(amount: int, currency: str, recipient: str) -> str:
            paid.append((amount, currency, recipient))
            return "done"

        assert transfer(250, "EUR", known) == "done"
        held = transfer(48000, "EUR", other)
        assert isinstance(held, ToolRefusal) and held.outcome == "pending_approval", held
        for approver in (alice, bob):  # over `api`, another channel than the request's `chat`
            approver.decide_approval(held.data["request_id"], binding_code=held.data["binding_code"])
        assert transfer(48000, "EUR", other) == "done"
        again = transfer(48000, "EUR", other)
        assert again.outcome == "pending_approval" and again.data["request_id"] != held.data["request_id"]
        assert transfer(48001, "EUR", other).outcome == "pending_approval"
        assert agent.status(held.data["request_id"]).result == "succeeded"
    assert paid == [(250, "EUR", known), (48000, "EUR", other)]
