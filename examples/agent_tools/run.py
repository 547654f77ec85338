"""An agent loop whose Python tools are gated by Interlock, with a scripted model: no network, no framework.

    .venv/bin/python examples/agent_tools/run.py

The model asks for tools; the loop runs them through `gated_tool` on a fresh temporary home with this
folder's policy. A balance lookup runs; a payment waits for approval; an approver approves it on the console
with the binding code the user relayed; the same call then runs once; a changed amount is a new request; a
payment to a blocked recipient never runs. Each step is checked; the exit code is 1 if any misbehaved.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interlock import Home, gated_tool
from interlock.enforce.tools import ToolRefusal

HERE = Path(__file__).resolve().parent
SUPPLIER = "DE02100100100006820101"


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Turn:
    """What the user says, the tool calls the model answers with, and what each call must come to."""

    user: str
    calls: tuple[ToolCall, ...]
    expect: tuple[str, ...]  # "ran" or the outcome of the refusal the tool returned


class ScriptedModel:
    """Plays a language model: emits its turn's tool calls one by one, then replies from what they returned."""

    def __init__(self, turns: list[Turn]) -> None:
        self.turns = turns

    def respond(self, turn: int, transcript: list[dict[str, Any]]) -> ToolCall | str:
        done = [m for m in transcript if m["role"] == "tool" and m["turn"] == turn]
        calls = self.turns[turn].calls
        if len(done) < len(calls):
            return calls[len(done)]
        last = done[-1]["content"]
        code = re.search(r"Binding code: (\S+)\.", last)  # the model reads the tool's text, as a real one would
        if code:
            return f"That payment needs approval from finance. Please give them the binding code {code.group(1)}."
        if "was not run" in last or "was NOT run" in last:
            return "I could not do that: " + last
        return f"Done: {last}"


class Bank:
    """The side effects the tools have, recorded, so 'ran once' and 'never ran' can be checked."""

    def __init__(self) -> None:
        self.payments: list[tuple[int, str]] = []
        self.lookups: list[str] = []


def make_tools(gate: Any, bank: Bank) -> dict[str, Callable[..., Any]]:
    """The agent's tools: plain functions, gated as the finance assistant acting for the CEO over chat."""
    identity: dict[str, Any] = {
        "gate": gate, "executor": "agent-tools", "channel": "chat",
        "agent": {"id": "agent:finance-assistant", "kind": "agent"},
        "on_behalf_of": [{"id": "user:ceo", "kind": "human"}],
    }

    @gated_tool(**identity)
    def lookup_balance(account: str) -> str:
        """Look up the balance of one of the company's accounts."""
        bank.lookups.append(account)
        return f"{account} holds 125,000.00 EUR"

    @gated_tool(resource="account:treasury", **identity)
    def pay(amount: int, recipient: str, reference: str = "") -> str:
        """Pay `amount` EUR from the treasury account to the IBAN `recipient`."""
        bank.payments.append((amount, recipient))
        return f"paid {amount} EUR to {recipient}"

    return {"lookup_balance": lookup_balance, "pay": pay}


def script() -> list[Turn]:
    invoice = {"amount": 4800, "recipient": SUPPLIER, "reference": "INV-2291"}
    return [
        Turn("How much is in the treasury account?",
             (ToolCall("lookup_balance", {"account": "treasury"}),), ("ran",)),
        Turn("Pay the supplier's invoice INV-2291, 4,800 EUR.",
             (ToolCall("pay", invoice),), ("pending_approval",)),
        Turn("Finance approved it. Go ahead.",
             (ToolCall("pay", invoice),), ("ran",)),
        Turn("Did it go through? Pay it once more to be sure.",
             (ToolCall("pay", invoice),), ("pending_approval",)),
        Turn("Make it 4,900 instead.",
             (ToolCall("pay", {**invoice, "amount": 4900}),), ("pending_approval",)),
        Turn("And send 50 EUR to blocked:shell-co.",
             (ToolCall("pay", {"amount": 50, "recipient": "blocked:shell-co"}),), ("denied",)),
    ]


def main() -> int:
    failures = 0

    def check(ok: bool, what: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"  {'✓' if ok else '✗'} {what}")

    with tempfile.TemporaryDirectory(prefix="interlock-agent-tools-") as tmp:
        gate = Home(Path(tmp), HERE / "policy.yaml").open_gate()
        bank = Bank()
        tools = make_tools(gate, bank)
        turns = script()
        model = ScriptedModel(turns)
        transcript: list[dict[str, Any]] = []
        held: dict[int, ToolRefusal] = {}
        try:
            for number, turn in enumerate(turns):
                if number == 2:
                    # The user passes the binding code to an approver, who decides on the console (another
                    # channel than the agent's chat), typing the code: the gate issues the grant.
                    waiting = held[1]
                    state = gate.decide_approval(waiting.data["request_id"], "user:alice", "console",
                                                 binding_code=waiting.data["binding_code"])
                    print(f"\napprover user:alice approves {waiting.data['request_id']} on the console"
                          f" with binding code {waiting.data['binding_code']}: {state.outcome}")
                    check(state.outcome == "approved", "the request is approved and its grant issued")
                print(f"\nuser: {turn.user}")
                transcript.append({"role": "user", "turn": number, "content": turn.user})
                got: list[str] = []
                while isinstance(reply := model.respond(number, transcript), ToolCall):
                    result = tools[reply.name](**reply.arguments)
                    outcome = result.outcome if isinstance(result, ToolRefusal) else "ran"
                    if isinstance(result, ToolRefusal) and outcome == "pending_approval":
                        held[number] = result
                    got.append(outcome)
                    print(f"  model calls {reply.name}({reply.arguments}) -> {outcome}")
                    transcript.append({"role": "tool", "turn": number, "name": reply.name, "content": str(result)})
                print(f"model: {reply}")
                transcript.append({"role": "assistant", "turn": number, "content": reply})
                check(tuple(got) == turn.expect, f"expected {', '.join(turn.expect)}; got {', '.join(got)}")

            print("\nafterwards")
            check(bank.lookups == ["treasury"], "the balance was looked up once")
            check(bank.payments == [(4800, SUPPLIER)], "exactly one payment ran: 4,800 EUR, after its approval")
            check(held[3].data["request_id"] != held[1].data["request_id"]
                  and held[4].data["request_id"] not in (held[1].data["request_id"], held[3].data["request_id"]),
                  "the repeated payment and the changed amount are new requests, each waiting for approval")
            paid = gate.status(held[1].data["request_id"])
            check((paid.consumed, paid.result) == (True, "succeeded"), "the approved payment's grant was consumed"
                  " and its result reported succeeded")
            gate.ledger.checkpoint()
            verification = gate.verify_audit()
            check(verification.ok, f"the audit log verifies ({verification.entries} entries)")
        finally:
            gate.store.close()
    if failures:
        print(f"\n{failures} step(s) did not behave as expected")
        return 1
    print("\nEvery step behaved: the agent's tools ran only with a grant consumed for exactly that call.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
