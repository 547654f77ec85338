"""The `interlock` command end to end: real processes, a real SQLite file, the exit-code and output contract."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import stat
from pathlib import Path

import jwt
import pytest
import typer.main
from cryptography.hazmat.primitives import serialization

from interlock.cli import app

from .e2e_support import REQUESTS, SEED_POLICY, Run, audit_bodies, seed_request, snapshot, spec_of, write

SEED_VERSION = hashlib.sha256(SEED_POLICY.read_bytes()).hexdigest()
CEO_PAYMENT = REQUESTS / "ceo-payment.json"
SMALL_PAYMENT = REQUESTS / "small-payment.json"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _refund() -> dict[str, object]:
    """A payments action no rule covers: the policy names its executor, but no rule allows it."""
    request = seed_request("small-payment")
    request["action"] = "payments.refund"
    return request


# --- init, keys, policy validate, check ------------------------------------------------------


def test_init_creates_a_home_with_the_seed_policy_and_a_private_signing_key(interlock: Run, tmp_path: Path) -> None:
    target = tmp_path / "deep" / "new-home"
    body = interlock("init", target).ok()
    assert body == {"home": str(target), "policy": str(target / "policy.yaml")}
    assert (target / "policy.yaml").read_bytes() == SEED_POLICY.read_bytes()
    key = target / "keys" / "grant-signing.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "keys").stat().st_mode) == 0o700
    assert not (target / "interlock.db").exists(), "init writes no state"

    # A second init keeps the user's edited policy and the existing key.
    (target / "policy.yaml").write_text("# mine\n")
    pem = key.read_bytes()
    again = interlock("init", target)
    assert again.code == 0, again
    assert "not overwritten" in again.stderr
    assert (target / "policy.yaml").read_text() == "# mine\n"
    assert key.read_bytes() == pem


def test_keys_jwks_publishes_the_public_half_of_the_home_key_and_nothing_private(
    interlock: Run, tmp_path: Path
) -> None:
    target = tmp_path / "h"
    interlock("init", target).ok()
    jwks = interlock("keys", "jwks", "--home", target).ok()
    assert len(jwks["keys"]) == 1
    jwk = jwks["keys"][0]
    assert {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA"}.items() <= jwk.items()
    assert "d" not in jwk
    assert set(jwk) <= {"kty", "crv", "x", "kid", "alg", "use"}

    private = serialization.load_pem_private_key((target / "keys" / "grant-signing.pem").read_bytes(), None)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert jwk["x"] == _b64url(raw)
    thumbprint_input = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]}, separators=(",", ":"))
    assert jwk["kid"] == _b64url(hashlib.sha256(thumbprint_input.encode()).digest()), "kid is the RFC 7638 thumbprint"
    assert interlock("keys", "jwks", "--home", target).ok() == jwks, "the key is stable across runs"


def test_policy_validate_prints_the_version_and_names_the_line_of_a_problem(interlock: Run, tmp_path: Path) -> None:
    body = interlock("policy", "validate", SEED_POLICY).ok()
    assert body == {"valid": True, "version": SEED_VERSION, "rules": 8}

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nrules:\n  - id: r1\n    action: payments.transfer\n    effect: allow_maybe\n")
    error = interlock("policy", "validate", broken).expect_refused("policy.invalid", 2)
    assert "line 5" in error["message"]
    assert "effect" in error["message"]
    assert error["detail"]["line"] == 5


def test_check_decides_without_writing_any_state(interlock: Run, cli: Run, tmp_path: Path) -> None:
    state_home = tmp_path / "would-be-home"
    decision = interlock("check", "--policy", SEED_POLICY, SMALL_PAYMENT,
                         env={"INTERLOCK_HOME": str(state_home)}).ok()
    assert decision["outcome"] == "allowed"  # the same words as `submit`
    assert decision["matched_rules"] == ["small-known-transfers"]
    assert decision["policy_version"] == SEED_VERSION
    assert decision["explanation"]

    held = cli("check", "--policy", SEED_POLICY, CEO_PAYMENT, env={"INTERLOCK_HOME": str(state_home)}).ok()
    assert held["outcome"] == "pending_approval"
    assert held["requirements"][0]["quorum"] == 2

    assert not state_home.exists()
    assert not (tmp_path / ".interlock").exists()
    assert list(tmp_path.rglob("*.db")) == []


# --- submit, approve, consume, report, status, audit ---------------------------------------


def test_submit_prints_request_id_outcome_reasons_explanation_and_a_grant_only_when_allowed(
    interlock: Run, home: Path, tmp_path: Path
) -> None:
    allowed = interlock("submit", "--home", home, SMALL_PAYMENT).ok()
    held = interlock("submit", "--home", home, CEO_PAYMENT).ok()
    denied = interlock("submit", "--home", home, write(tmp_path / "refund.json", _refund())).ok()

    for body in (allowed, held, denied):
        assert body["request_id"].startswith("req_")
        assert isinstance(body["reasons"], list) and body["reasons"]
        assert isinstance(body["explanation"], str) and body["explanation"]
        assert body["policy_version"] == SEED_VERSION
    assert allowed["outcome"] == "allowed"
    assert allowed["grant"].count(".") == 2
    assert held["outcome"] == "pending_approval"
    assert "grant" not in held
    assert held["approval"]["progress"] == [{"rule_id": "other-transfers-need-two", "quorum": 2, "approved_by": []}]
    assert denied["outcome"] == "denied"
    assert "grant" not in denied
    assert "policy.no_matching_rule" in denied["reasons"]

    rows = snapshot(home)["requests"]
    assert [(row["id"], row["status"]) for row in rows] == [
        (allowed["request_id"], "allowed"), (held["request_id"], "pending_approval"), (denied["request_id"], "denied"),
    ]


def test_two_approvals_grant_and_the_grant_is_consumed_once_for_exactly_the_approved_action(
    interlock: Run, home: Path, tmp_path: Path
) -> None:
    request = seed_request("ceo-payment")
    held = interlock("submit", "--home", home, CEO_PAYMENT).ok()
    request_id = held["request_id"]
    code = held["approval"]["binding_code"]  # the requester tells it to the approvers

    unbound = interlock("approve", request_id, "--as", "user:alice", "--channel", "console", "--home", home)
    unbound.expect_refused("approval.binding_mismatch", 3)
    first = interlock("approve", request_id, "--as", "user:alice", "--channel", "console", "--binding-code", code,
                      "--home", home).ok()
    assert first["outcome"] == "pending_approval"
    assert first["approval"]["progress"][0]["approved_by"] == ["user:alice"]
    assert "grant" not in first

    second = interlock("approve", request_id, "--as", "user:bob", "--channel", "console", "--binding-code", code,
                       "--comment", "called the CEO back", "--home", home).ok()
    assert second["outcome"] == "approved"
    grant = second["grant"]
    assert [(a["approver"], a["verdict"]) for a in second["approvals"]] == [
        ("user:alice", "approve"), ("user:bob", "approve"),
    ]

    # The grant verifies with nothing but the published key, and binds the approved action.
    jwk = interlock("keys", "jwks", "--home", home).ok()["keys"][0]
    assert jwt.get_unverified_header(grant)["kid"] == jwk["kid"]
    claims = jwt.decode(grant, jwt.PyJWK(jwk).key, algorithms=["EdDSA"], audience="payments-service")
    details = claims["authorization_details"][0]
    assert details["digest"] == held["digest"]
    assert details["request_id"] == request_id
    assert sorted((a["id"], a["channel"], a["auth"]) for a in details["approvals"]) == sorted(
        (a["id"], "console", "local") for a in second["approvals"])
    # RFC 8693: `sub` is whom the action is for (the CEO), `act` who is acting (the agent).
    assert claims["sub"] == "user:ceo"
    assert claims["act"] == {"sub": "agent:finance-assistant"}

    changed = write(tmp_path / "changed.json", spec_of({**request, "params": {**request["params"], "amount": 48001}}))
    interlock("consume", "--grant", grant, "--executor", "payments-service", changed, "--home", home).expect_refused(
        "grant.digest_mismatch", 3)

    action = write(tmp_path / "action.json", spec_of(request))
    consumed = interlock("consume", "--grant", grant, "--executor", "payments-service", action, "--home", home).ok()
    assert consumed == {"consumed": True, "jti": claims["jti"], "request_id": request_id,
                        "executor": "payments-service", "action": "payments.transfer", "digest": held["digest"]}

    replay = interlock("consume", "--grant", grant, "--executor", "payments-service", action, "--home", home)
    error = replay.expect_refused("grant.already_used", 3)
    assert replay.json() == {"error": error}

    reported = interlock("report", claims["jti"], "--result", "succeeded", "--detail", "bank ref 77", "--home", home)
    assert reported.ok() == {"jti": claims["jti"], "request_id": request_id, "result": "succeeded",
                             "detail": "bank ref 77"}

    status = interlock("status", request_id, "--home", home).ok()
    assert status["outcome"] == "approved"
    assert status["consumed"] is True
    assert status["result"] == "succeeded"
    assert "grant" not in status, "a used grant is not handed out again"

    verified = interlock("audit", "verify", "--home", home).ok()
    rows = snapshot(home)["audit"]
    assert verified["ok"] is True
    assert verified["problems"] == []
    assert verified["entries"] == len(rows)
    assert [body["kind"] for body in audit_bodies(rows)] == [
        "request.decided", "approval.refused", "approval.approved", "approval.approved",
        "grant.refused", "grant.consumed", "grant.refused", "execution.reported",
    ]


def test_a_rejection_ends_the_request(interlock: Run, cli: Run, home: Path) -> None:
    request_id = cli("submit", "--home", home, CEO_PAYMENT).ok()["request_id"]
    rejected = interlock("approve", request_id, "--as", "user:carol", "--channel", "console", "--reject",
                         "--comment", "unknown recipient", "--home", home).ok()
    assert rejected["outcome"] == "rejected"
    assert rejected["approvals"][0]["verdict"] == "reject"
    assert rejected["approvals"][0]["comment"] == "unknown recipient"
    assert "grant" not in rejected

    cli("approve", request_id, "--as", "user:alice", "--channel", "console", "--home", home).expect_refused(
        "request.rejected", 3)
    status = interlock("status", request_id, "--home", home).ok()
    assert status["outcome"] == "rejected"
    assert [a["approver"] for a in status["approvals"]] == ["user:carol"]
    assert snapshot(home)["grants"] == []


def test_report_of_a_failure_is_recorded(cli: Run, home: Path, tmp_path: Path) -> None:
    submitted = cli("submit", "--home", home, SMALL_PAYMENT).ok()
    action = write(tmp_path / "action.json", spec_of(seed_request("small-payment")))
    jti = cli("consume", "--grant", submitted["grant"], "--executor", "payments-service", action,
              "--home", home).ok()["jti"]
    cli("report", jti, "--result", "failed", "--detail", "bank timeout", "--home", home).ok()
    assert cli("status", submitted["request_id"], "--home", home).ok()["result"] == "failed"
    cli("report", jti, "--result", "succeeded", "--home", home).expect_refused("grant.result_recorded", 3)
    cli("report", jti, "--result", "maybe", "--home", home).expect_refused("input.invalid", 2)


def test_consume_reads_the_action_from_stdin(cli: Run, home: Path) -> None:
    grant = cli("submit", "--home", home, SMALL_PAYMENT).ok()["grant"]
    action = json.dumps(spec_of(seed_request("small-payment"))).encode()
    assert cli("consume", "--grant", grant, "--executor", "payments-service", "-", "--home", home,
               input=action).ok()["consumed"] is True


def test_a_grant_for_one_executor_is_refused_to_another(cli: Run, home: Path, tmp_path: Path) -> None:
    grant = cli("submit", "--home", home, SMALL_PAYMENT).ok()["grant"]
    action = write(tmp_path / "action.json", spec_of(seed_request("small-payment")))
    cli("consume", "--grant", grant, "--executor", "reporting-service", action, "--home", home).expect_refused(
        "grant.wrong_executor", 3)
    assert snapshot(home)["grants"][0]["consumed_at"] is None, "a refused grant stays unconsumed"
    cli("consume", "--grant", grant, "--executor", "payments-service", action, "--home", home).ok()


# --- choosing the home and the policy ---------------------------------------------------------


def _request_ids(home: Path) -> list[str]:
    return [row["id"] for row in snapshot(home)["requests"]]


def test_home_and_policy_come_from_the_environment_and_flags_win(interlock: Run, home: Path, tmp_path: Path) -> None:
    permissive = tmp_path / "refunds.yaml"
    permissive.write_text(
        "version: 1\nexecutors:\n  payments.refund: payments-service\n"
        "rules:\n  - id: refunds\n    action: payments.refund\n    effect: allow\n"
    )
    refund = write(tmp_path / "refund.json", _refund())
    env_home = tmp_path / "env-home"
    env = {"INTERLOCK_HOME": str(env_home), "INTERLOCK_POLICY": str(permissive)}

    by_env = interlock("submit", refund, env=env).ok()
    assert by_env["outcome"] == "allowed"
    assert by_env["policy_version"] == hashlib.sha256(permissive.read_bytes()).hexdigest()
    assert _request_ids(env_home) == [by_env["request_id"]]
    assert interlock("status", by_env["request_id"], env=env).ok()["outcome"] == "allowed"

    by_flags = interlock("submit", "--home", home, "--policy", SEED_POLICY, refund, env=env).ok()
    assert by_flags["outcome"] == "denied"
    assert by_flags["policy_version"] == SEED_VERSION
    assert _request_ids(home) == [by_flags["request_id"]]
    assert _request_ids(env_home) == [by_env["request_id"]], "the environment's home was not touched"

    # INTERLOCK_POLICY alone overrides HOME/policy.yaml.
    env_policy = interlock("submit", "--home", home, refund, env={"INTERLOCK_POLICY": str(permissive)}).ok()
    assert env_policy["outcome"] == "allowed"


def test_without_flags_or_environment_the_home_is_dot_interlock(interlock: Run, tmp_path: Path) -> None:
    interlock("init").ok()
    submitted = interlock("submit", SMALL_PAYMENT).ok()
    assert _request_ids(tmp_path / ".interlock") == [submitted["request_id"]]
    assert interlock("audit", "verify").ok()["entries"] == 1


# --- audit verify -----------------------------------------------------------------------------


def test_audit_verify_exits_1_naming_an_edited_entry(interlock: Run, cli: Run, home: Path) -> None:
    cli("submit", "--home", home, CEO_PAYMENT).ok()
    assert cli("audit", "verify", "--home", home).ok()["ok"] is True

    db = sqlite3.connect(home / "interlock.db")
    leaf = db.execute("SELECT leaf FROM audit WHERE idx = 0").fetchone()[0]
    db.execute("UPDATE audit SET leaf = ? WHERE idx = 0", (bytes(leaf).replace(b"require_approval", b"allow"),))
    db.commit()
    db.close()

    done = interlock("audit", "verify", "--home", home)
    assert done.code == 1, done
    body = done.json()
    assert body["ok"] is False
    assert any(problem.startswith("entry 0:") for problem in body["problems"]), body


def test_audit_verify_without_a_store_is_unavailable(interlock: Run, tmp_path: Path) -> None:
    interlock("audit", "verify", "--home", tmp_path / "nowhere").expect_refused("store.unavailable", 4)
    assert not (tmp_path / "nowhere").exists()


# --- usage errors and help --------------------------------------------------------------------


def test_a_missing_option_is_a_usage_error(interlock: Run, home: Path) -> None:
    done = interlock("approve", "req_x", "--channel", "console", "--home", home)
    assert done.code == 2, done
    # The same contract as every refusal: JSON on stdout, one line on stderr.
    assert json.loads(done.stdout)["error"]["code"] == "input.usage"
    assert done.stderr.strip().splitlines() == [
        "interlock: input.usage: Missing option '--as'. (see `interlock approve --help`)"
    ]
    assert not (home / "interlock.db").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["approve", "req_x", "--as", "user:alice"], "--channel"),
        (["consume", "--executor", "payments-service", "a.json"], "--grant"),
        (["consume", "--grant", "g", "a.json"], "--executor"),
        (["report", "grt_x"], "--result"),
        (["check", "r.json"], "--policy"),
        (["submit"], "REQUEST"),
        (["submit", "r.json", "--bogus"], "--bogus"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_usage_errors_exit_2_naming_what_is_wrong(cli: Run, args: list[str], named: str) -> None:
    done = cli(*args)
    assert done.code == 2, done
    assert named.lower() in done.stderr.lower()


def test_an_argument_that_is_not_a_channel_name_is_bad_input(cli: Run, home: Path) -> None:
    request_id = cli("submit", "--home", home, CEO_PAYMENT).ok()["request_id"]
    before = snapshot(home)
    error = cli("approve", request_id, "--as", "user:alice", "--channel", "Console!", "--home", home).expect_refused(
        "input.invalid", 2)
    assert "Console!" in error["message"]
    assert snapshot(home) == before


def _commands() -> list[list[str]]:
    def walk(command: object, path: list[str]) -> list[list[str]]:
        children = getattr(command, "commands", None)
        if not children:
            return [path]
        return [found for name, child in children.items() for found in walk(child, [*path, name])]

    return walk(typer.main.get_command(app), [])


EVERY_COMMAND = _commands()


def test_every_documented_command_exists() -> None:
    names = {" ".join(path) for path in EVERY_COMMAND}
    assert names >= {"submit", "approve", "status", "consume", "report", "check", "policy validate",
                     "audit verify", "keys jwks", "init", "demo"}


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=" ".join)
def test_help_works_for_every_command(cli: Run, command: list[str], tmp_path: Path) -> None:
    done = cli(*command, "--help")
    assert done.code == 0, done
    assert "Usage:" in done.stdout
    if "--home" in done.stdout:
        assert "INTERLOCK_HOME" in done.stdout, "the help names the environment variable"
    if "--policy" in done.stdout and command != ["check"]:
        assert "INTERLOCK_POLICY" in done.stdout
    assert list(tmp_path.iterdir()) == [], "--help does nothing else"


def test_help_as_a_real_process(interlock: Run) -> None:
    done = interlock("--help")
    assert done.code == 0, done
    for name in ("submit", "approve", "consume", "audit", "keys"):
        assert name in done.stdout
