"""The one request every subject decides, the rule they all express, and the checks peers must pass."""

from __future__ import annotations

import copy
import datetime
import json
from typing import Any

EXPRESSION = "params.amount <= 1000 && params.recipient in principal.attributes.known_recipients"
RECIPIENT = "DE89370400440532013000"
KNOWN_RECIPIENTS = [RECIPIENT, "FR1420041010050500013M02606", "NL91ABNA0417164300"]
EXECUTOR = "payments-service"
NOW = datetime.datetime(2026, 11, 25, 9, 0, tzinfo=datetime.UTC)

# One allow rule with a CEL condition and no history functions, so every path decides the same rule.
POLICY_YAML = f"""\
version: 1
executors:
  "payments.*": {EXECUTOR}
rules:
  - id: small-known-transfers
    action: payments.transfer
    when: "{EXPRESSION}"
    effect: allow
"""

REQUEST: dict[str, Any] = {
    "principal": {"id": "agent:finance-assistant", "kind": "agent",
                  "attributes": {"known_recipients": KNOWN_RECIPIENTS}},
    "on_behalf_of": [{"id": "user:ceo", "kind": "human"}],
    "action": "payments.transfer",
    "resource": "account:treasury",
    "params": {"amount": 750, "currency": "EUR", "recipient": RECIPIENT},
    "channel": "api",
    "context": {"ip": "203.0.113.7"},
    "justification": "monthly supplier payment",
}
REQUEST_BYTES = json.dumps(REQUEST).encode()
ACTION_BYTES = json.dumps({k: REQUEST[k] for k in ("action", "resource", "params")}).encode()


def changed_requests() -> dict[str, dict[str, Any]]:
    """Variants of REQUEST that the rule must deny: each subject is checked against all of them."""
    too_large = copy.deepcopy(REQUEST)
    too_large["params"]["amount"] = 5000
    unknown = copy.deepcopy(REQUEST)
    unknown["params"]["recipient"] = "GB33BUKB20201555555555"
    other_action = copy.deepcopy(REQUEST)
    other_action["action"] = "payments.refund"
    return {"amount 5000": too_large, "unknown recipient": unknown, "other action": other_action}


def require(condition: bool, message: str) -> None:
    """Stop the benchmark if a subject does not decide as the rule says (a wrong answer can look fast)."""
    if not condition:
        raise SystemExit(f"bench: misconfigured subject: {message}")
