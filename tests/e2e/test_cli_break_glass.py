"""`interlock break-glass` and `interlock break-glass-review` end to end: the binding code, the grant, the review."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import jwt
import pytest

from .e2e_support import REQUESTS, SEED_POLICY, Done, Run, audit_bodies, seed_request, snapshot, write

CEO_PAYMENT = REQUESTS / "ceo-payment.json"
BREAK_GLASS = """
break_glass:
  - id: treasury-emergency
    who: ["group:oncall-leads"]
    actions: ["payments.*"]
    review_within: 4h
"""
WHY = "supplier cut-off at 10:00, both finance approvers unreachable"


@pytest.fixture
def bg_home(home: Path) -> Path:
    """The seed home with a policy that lets the on-call leads break the glass on payments."""
    (home / "policy.yaml").write_text(SEED_POLICY.read_text() + BREAK_GLASS)
    return home


def _break_glass(run: Run, home: Path, request_id: str, *code: str) -> Done:
    return run("break-glass", request_id, "--as", "user:grace", "--channel", "phone", "--justification", WHY,
               *(("--binding-code", *code) if code else ()), "--home", home)


def _open_reviews(home: Path) -> list[str]:
    db = sqlite3.connect(f"file:{home / 'interlock.db'}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("SELECT request_id FROM break_glass_reviews WHERE closed_at IS NULL")]
    finally:
        db.close()


@pytest.mark.parametrize("typed", [None, "ABC-DEF", "look-alike's"])
def test_breaking_the_glass_on_a_sensitive_action_without_its_code_is_refused(
    cli: Run, bg_home: Path, tmp_path: Path, typed: str | None
) -> None:
    request_id = cli("submit", "--home", bg_home, CEO_PAYMENT).ok()["request_id"]
    look_alike_request = seed_request("ceo-payment")
    look_alike_request["params"]["recipient"] = "GB33BUKB20201555555556"
    look_alike = cli("submit", "--home", bg_home, write(tmp_path / "look-alike.json", look_alike_request)).ok()
    if typed == "look-alike's":
        typed = look_alike["approval"]["binding_code"]
    before = snapshot(bg_home)

    refused = _break_glass(cli, bg_home, request_id, *((typed,) if typed else ()))

    error = refused.expect_refused("approval.binding_mismatch", 3)
    assert "binding code" in error["message"]
    after = snapshot(bg_home)
    assert {t: rows for t, rows in after.items() if t != "audit"} == {
        t: rows for t, rows in before.items() if t != "audit"}, "nothing but the refusal is recorded"
    (entry,) = audit_bodies(after["audit"][len(before["audit"]):])
    assert (entry["kind"], entry["data"]["code"], entry["data"]["who"]) == (
        "break_glass.refused", "approval.binding_mismatch", "user:grace")
    assert _open_reviews(bg_home) == []


def test_break_glass_with_the_code_grants_at_once_and_two_others_sign_it_off(
    interlock: Run, cli: Run, bg_home: Path
) -> None:
    submitted = cli("submit", "--home", bg_home, CEO_PAYMENT).ok()
    request_id, code = submitted["request_id"], submitted["approval"]["binding_code"]
    assert submitted["approval"]["binding_code_required"] is True

    used = _break_glass(interlock, bg_home, request_id, code.lower()).ok()

    assert used["outcome"] == "approved" and used["grant"]
    assert [(a["approver"], a["channel"], a.get("break_glass")) for a in used["approvals"]] == [
        ("user:grace", "phone", True)]
    details = jwt.decode(used["grant"], options={"verify_signature": False})["authorization_details"][0]
    assert details["break_glass"] is True and details["break_glass_entry"] == "treasury-emergency"
    assert _open_reviews(bg_home) == [request_id]

    first = cli("break-glass-review", request_id, "--as", "user:alice", "--channel", "web", "--comment", "invoice ok",
                "--home", bg_home).ok()
    assert first["closed"] is False
    second = cli("break-glass-review", request_id, "--as", "user:erin", "--channel", "web", "--home", bg_home).ok()
    assert second["closed"] is True and [s["reviewer"] for s in second["signoffs"]] == ["user:alice", "user:erin"]
    assert _open_reviews(bg_home) == []


def test_a_non_sensitive_action_needs_no_code(cli: Run, bg_home: Path) -> None:
    policy = bg_home / "policy.yaml"
    policy.write_text(policy.read_text().replace(
        'sensitive: ["payments.*", "config.apply", "access.*", "data.share*"]', "sensitive: []"))
    request_id = cli("submit", "--home", bg_home, CEO_PAYMENT).ok()["request_id"]
    assert _break_glass(cli, bg_home, request_id).ok()["outcome"] == "approved"
