"""Bad input through the `interlock` command: exit 2 (or 3 for a refusal), a one-line error naming the problem
with its stable code in the JSON on stdout, and nothing in the store changed."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .e2e_support import REQUESTS, SEED_POLICY, Run, audit_bodies, seed_request, snapshot, spec_of, write

SMALL = json.dumps(seed_request("small-payment"))
AMOUNT = '"amount": 250'
assert AMOUNT in SMALL


def _with(**fields: Any) -> bytes:
    return json.dumps({**seed_request("small-payment"), **fields}).encode()


def _nested(levels: int) -> bytes:
    """A request whose deepest container is at `levels` (the top-level object is level 1, params level 2)."""
    deep: Any = 0
    for _ in range(levels - 2):
        deep = [deep]
    request = seed_request("small-payment")
    return json.dumps({**request, "params": {**request["params"], "deep": deep}}).encode()


def _padded(size: int) -> bytes:
    """A valid request padded with insignificant whitespace to exactly `size` bytes."""
    document = SMALL.encode()
    return document[:-1] + b" " * (size - len(document)) + b"}"


def _principal(**extra: Any) -> bytes:
    request = seed_request("small-payment")
    return json.dumps({**request, "principal": {**request["principal"], **extra}}).encode()


# (case id, document, reason code, something the message must name)
BAD_REQUESTS: list[tuple[str, bytes, str, str]] = [
    ("duplicate-param", SMALL.replace(AMOUNT, AMOUNT + ', "amount": 48000').encode(), "input.duplicate_key",
     "`amount`"),
    ("duplicate-top-level", SMALL.replace('"action": ', '"action": "payments.refund", "action": ', 1).encode(),
     "input.duplicate_key", "`action`"),
    ("nan", SMALL.replace(AMOUNT, '"amount": NaN').encode(), "input.invalid", "NaN"),
    ("infinity", SMALL.replace(AMOUNT, '"amount": Infinity').encode(), "input.invalid", "Infinity"),
    ("minus-infinity", SMALL.replace(AMOUNT, '"amount": -Infinity').encode(), "input.invalid", "Infinity"),
    ("float-overflow", SMALL.replace(AMOUNT, '"amount": 1e400').encode(), "input.invalid", "1e400"),
    ("integer-2^53", SMALL.replace(AMOUNT, f'"amount": {2**53}').encode(), "input.invalid", "2^53"),
    ("integer-minus-2^53", SMALL.replace(AMOUNT, f'"amount": {-(2**53)}').encode(), "input.invalid", "2^53"),
    ("integer-5000-digits", SMALL.replace(AMOUNT, '"amount": ' + "9" * 5000).encode(), "input.invalid", "2^53"),
    ("top-level-array", b"[]", "input.invalid", "object"),
    ("top-level-string", b'"payments.transfer"', "input.invalid", "object"),
    ("top-level-null", b"null", "input.invalid", "object"),
    ("top-level-number", b"42", "input.invalid", "object"),
    ("depth-33", _nested(33), "input.too_deep", "32"),
    ("depth-100000", b'{"params": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "input.too_deep", "32"),
    ("string-64KiB+1", _with(context={"note": "a" * (64 * 1024 + 1)}), "input.too_large", "$.context.note"),
    ("string-64KiB+2-in-utf8", _with(context={"note": "é" * (32 * 1024 + 1)}), "input.too_large", "$.context.note"),
    ("request-1MiB+1", _padded(1024 * 1024 + 1), "input.too_large", "1048577 bytes"),
    ("unknown-top-level-field", _with(surprise=True), "input.unknown_field", "`surprise`"),
    ("unknown-principal-field", _principal(nickname="fin"), "input.unknown_field", "`principal.nickname`"),
    ("unknown-delegator-field", _with(on_behalf_of=[{"id": "user:ceo", "kind": "human", "title": "CEO"}]),
     "input.unknown_field", "`on_behalf_of.0.title`"),
    ("invalid-utf8", SMALL.replace("office", "\udcffoffice").encode("utf-8", "surrogateescape"), "input.invalid",
     "UTF-8"),
    ("lone-surrogate", SMALL.replace("office", "\\ud800office").encode(), "input.invalid", "surrogate"),
    ("empty", b"", "input.invalid", "not JSON"),
    ("trailing-data", SMALL.encode() + b" {}", "input.invalid", "not JSON"),
    ("wrong-type", _with(params=[250]), "input.invalid", "`params`"),
    ("bad-principal-kind", _principal(kind="robot"), "input.invalid", "`principal.kind`"),
    ("bad-channel", _with(channel="Chat Window"), "input.invalid", "`channel`"),
]
SUBPROCESS_CASES = {"duplicate-param", "nan", "integer-2^53", "depth-33", "request-1MiB+1",
                    "unknown-principal-field", "invalid-utf8"}


@pytest.fixture
def populated(cli: Run, home: Path) -> dict[str, Any]:
    """A home with state: one request pending approval, one allowed with an unused grant."""
    # The allowed one first: a pending 48,000 counts toward the daily limit of small transfers.
    allowed = cli("submit", "--home", home, REQUESTS / "small-payment.json").ok()
    pending = cli("submit", "--home", home, REQUESTS / "ceo-payment.json").ok()
    return {"pending": pending["request_id"], "allowed": allowed["request_id"], "grant": allowed["grant"]}


def _assert_named(error: dict[str, Any], named: str) -> None:
    assert named in error["message"], error["message"]


@pytest.mark.parametrize(("document", "code", "named"), [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
def test_submit_refuses_bad_input_and_changes_nothing(
    cli: Run, home: Path, tmp_path: Path, populated: dict[str, Any], document: bytes, code: str, named: str
) -> None:
    before = snapshot(home)
    path = write(tmp_path / "bad.json", document)
    _assert_named(cli("submit", "--home", home, path).expect_refused(code, 2), named)
    _assert_named(cli("submit", "--home", home, "-", input=document).expect_refused(code, 2), named)
    _assert_named(cli("check", "--policy", SEED_POLICY, path).expect_refused(code, 2), named)
    assert snapshot(home) == before


@pytest.mark.parametrize(("document", "code", "named"),
                         [case[1:] for case in BAD_REQUESTS if case[0] in SUBPROCESS_CASES],
                         ids=[case[0] for case in BAD_REQUESTS if case[0] in SUBPROCESS_CASES])
def test_bad_input_as_a_real_process(
    interlock: Run, home: Path, tmp_path: Path, populated: dict[str, Any], document: bytes, code: str, named: str
) -> None:
    before = snapshot(home)
    done = interlock("submit", "--home", home, write(tmp_path / "bad.json", document))
    _assert_named(done.expect_refused(code, 2), named)
    assert snapshot(home) == before


@pytest.mark.parametrize(
    "document",
    [
        SMALL.replace(AMOUNT, f'"amount": {2**53 - 1}').encode(),
        _nested(32),
        _with(context={"note": "a" * (64 * 1024)}),
        _padded(1024 * 1024),
    ],
    ids=["integer-2^53-1", "depth-32", "string-64KiB", "request-1MiB"],
)
def test_the_limits_themselves_are_accepted(cli: Run, home: Path, tmp_path: Path, document: bytes) -> None:
    """The refusals above are at the limits, not somewhere below them."""
    assert cli("check", "--policy", SEED_POLICY, write(tmp_path / "edge.json", document)).ok()["outcome"]
    assert cli("submit", "--home", home, tmp_path / "edge.json").ok()["request_id"]


def test_missing_and_unreadable_files(interlock: Run, cli: Run, home: Path, tmp_path: Path,
                                      populated: dict[str, Any]) -> None:
    before = snapshot(home)
    missing = tmp_path / "no-such-request.json"
    error = interlock("submit", "--home", home, missing).expect_refused("input.unreadable", 2)
    assert str(missing) in error["message"] and "No such file" in error["message"]
    directory = tmp_path / "a-directory.json"
    directory.mkdir()
    for args in (["submit", "--home", home, directory], ["check", "--policy", SEED_POLICY, directory],
                 ["consume", "--grant", populated["grant"], "--executor", "payments-service", directory,
                  "--home", home],
                 ["policy", "validate", directory]):
        error = cli(*args).expect_refused("input.unreadable", 2)
        assert str(directory) in error["message"]
    assert snapshot(home) == before


def test_a_missing_policy_is_refused_before_anything_is_written(cli: Run, home: Path, tmp_path: Path,
                                                                populated: dict[str, Any]) -> None:
    before = snapshot(home)
    missing = tmp_path / "no-policy.yaml"
    error = cli("submit", "--home", home, "--policy", missing, REQUESTS / "small-payment.json").expect_refused(
        "policy.invalid", 2)
    assert str(missing) in error["message"]
    assert snapshot(home) == before


# --- policies ---------------------------------------------------------------------------------

_HEAD = ('version: 1\ngroups:\n  finance: ["user:alice", "user:bob"]\n'
         "executors:\n  payments.transfer: payments-service\nrules:\n")
# (case id, rules text after line 6, line that must be named, something the message must name)
BAD_POLICIES: list[tuple[str, str, int, str]] = [
    ("yaml-syntax", "  - id: r1\n    action: [payments.transfer\n    effect: allow\n", 9, "YAML"),
    ("unknown-effect", "  - id: r1\n    action: payments.transfer\n    effect: permit\n", 9, "effect"),
    ("cel-syntax", '  - id: r1\n    action: payments.transfer\n    when: "params.amount >"\n    effect: allow\n', 9,
     "CEL"),
    ("cel-undeclared", '  - id: r1\n    action: payments.transfer\n    when: "nosuch > 1"\n    effect: allow\n', 9,
     "nosuch"),
    ("undefined-group", "  - id: r1\n    action: payments.transfer\n    effect: require_approval\n"
     '    approval:\n      approvers: ["group:nobody"]\n', 11, "`nobody`"),
    ("duplicate-key", "  - id: r1\n    action: payments.transfer\n    effect: deny\n    effect: allow\n", 10,
     "`effect`"),
    ("unknown-field", '  - id: r1\n    action: payments.transfer\n    effect: allow\n    unless: "true"\n', 10,
     "unless"),
    ("quorum-too-high", "  - id: r1\n    action: payments.transfer\n    effect: require_approval\n"
     '    approval:\n      approvers: ["group:finance"]\n      quorum: 3\n', 12, "quorum"),
    ("independence-waived", "  - id: r1\n    action: payments.transfer\n    effect: require_approval\n"
     '    approval:\n      approvers: ["group:finance"]\n      independent_of: [requester]\n', 12, "waived"),
]


@pytest.mark.parametrize(("rules", "line", "named"), [case[1:] for case in BAD_POLICIES],
                         ids=[case[0] for case in BAD_POLICIES])
def test_a_broken_policy_is_refused_naming_its_line(
    cli: Run, home: Path, tmp_path: Path, populated: dict[str, Any], rules: str, line: int, named: str
) -> None:
    policy = tmp_path / "broken.yaml"
    policy.write_text(_HEAD + rules)
    before = snapshot(home)
    for args in (["policy", "validate", policy],
                 ["check", "--policy", policy, REQUESTS / "small-payment.json"],
                 ["submit", "--home", home, "--policy", policy, REQUESTS / "small-payment.json"],
                 ["status", populated["pending"], "--home", home, "--policy", policy]):
        error = cli(*args).expect_refused("policy.invalid", 2)
        assert error["message"].startswith(f"line {line}: "), error["message"]
        assert error["detail"]["line"] == line
        _assert_named(error, named)
    assert snapshot(home) == before


def test_a_broken_policy_as_a_real_process(interlock: Run, home: Path, tmp_path: Path,
                                           populated: dict[str, Any]) -> None:
    policy = tmp_path / "broken.yaml"
    policy.write_text(_HEAD + BAD_POLICIES[0][1])
    error = interlock("policy", "validate", policy).expect_refused("policy.invalid", 2)
    assert error["message"].startswith("line 9: YAML error")
    policy.write_text(_HEAD + BAD_POLICIES[2][1])
    before = snapshot(home)
    error = interlock("submit", "--home", home, "--policy", policy, REQUESTS / "small-payment.json").expect_refused(
        "policy.invalid", 2)
    assert error["message"].startswith("line 9: rule `r1`: CEL error")
    assert snapshot(home) == before


def test_a_policy_that_is_not_a_mapping(cli: Run, tmp_path: Path) -> None:
    for text in ("", "- just\n- a list\n", "42\n"):
        error = cli("policy", "validate", write(tmp_path / "p.yaml", text)).expect_refused("policy.invalid", 2)
        assert "mapping" in error["message"]


# --- approvals and grants that do not exist, or do not count ----------------------------------


def _assert_only_new_audit_entry(before: dict[str, Any], after: dict[str, Any], kind: str, code: str) -> None:
    """Nothing changed but one audit entry recording the refusal (refusals are audited by design)."""
    assert {t: rows for t, rows in after.items() if t != "audit"} == {
        t: rows for t, rows in before.items() if t != "audit"}
    assert after["audit"][: len(before["audit"])] == before["audit"]
    new = audit_bodies(after["audit"][len(before["audit"]):])
    assert [(entry["kind"], entry["data"]["code"]) for entry in new] == [(kind, code)]


def test_approving_a_request_that_does_not_exist(interlock: Run, home: Path, populated: dict[str, Any]) -> None:
    before = snapshot(home)
    error = interlock("approve", "req_does_not_exist", "--as", "user:alice", "--channel", "console",
                      "--home", home).expect_refused("request.not_found", 3)
    assert "req_does_not_exist" in error["message"]
    assert snapshot(home) == before


def test_an_approver_who_is_not_an_approver(interlock: Run, home: Path, populated: dict[str, Any]) -> None:
    before = snapshot(home)
    error = interlock("approve", populated["pending"], "--as", "user:mallory", "--channel", "console",
                      "--home", home).expect_refused("approval.not_an_approver", 3)
    assert "user:mallory" in error["message"]
    _assert_only_new_audit_entry(before, snapshot(home), "approval.refused", "approval.not_an_approver")


@pytest.mark.parametrize(
    ("approver", "channel", "code"),
    [
        ("user:ceo", "console", "approval.not_independent"),
        ("agent:finance-assistant", "console", "approval.not_independent"),
        ("user:alice", "chat", "approval.same_channel"),
        ("user:nobody", "console", "approval.not_an_approver"),
    ],
)
def test_approvals_that_do_not_count_record_nothing(
    cli: Run, home: Path, populated: dict[str, Any], approver: str, channel: str, code: str
) -> None:
    before = snapshot(home)
    cli("approve", populated["pending"], "--as", approver, "--channel", channel, "--home", home).expect_refused(code, 3)
    _assert_only_new_audit_entry(before, snapshot(home), "approval.refused", code)
    assert cli("status", populated["pending"], "--home", home).ok()["outcome"] == "pending_approval"


def test_approving_a_sensitive_action_without_its_binding_code(
    cli: Run, home: Path, populated: dict[str, Any]
) -> None:
    before = snapshot(home)
    cli("approve", populated["pending"], "--as", "user:alice", "--channel", "console", "--binding-code", "ABC-DEF",
        "--home", home).expect_refused("approval.binding_mismatch", 3)
    _assert_only_new_audit_entry(before, snapshot(home), "approval.refused", "approval.binding_mismatch")


def test_approving_twice(cli: Run, home: Path, populated: dict[str, Any]) -> None:
    code = cli("status", populated["pending"], "--home", home).ok()["approval"]["binding_code"]
    cli("approve", populated["pending"], "--as", "user:alice", "--channel", "console", "--binding-code", code,
        "--home", home).ok()
    before = snapshot(home)
    cli("approve", populated["pending"], "--as", "user:alice", "--channel", "email", "--home", home).expect_refused(
        "approval.duplicate", 3)
    _assert_only_new_audit_entry(before, snapshot(home), "approval.refused", "approval.duplicate")


def _forged(header: dict[str, Any], payload: dict[str, Any], key: Ed25519PrivateKey | None) -> str:
    if key is None:
        def part(body: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
        return f"{part(header)}.{part(payload)}."
    return jwt.encode(payload, key, algorithm="EdDSA", headers=header)


def _tampered(token: str) -> str:
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["aud"] = "reporting-service"
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{body}.{signature}"


GARBAGE_GRANTS: list[tuple[str, Callable[[str], str], str]] = [
    ("garbage", lambda _: "not-a-grant", "grant.malformed"),
    ("empty", lambda _: "", "grant.malformed"),
    ("three-dots-of-noise", lambda _: "a.b.c", "grant.malformed"),
    ("alg-none", lambda t: _forged({"alg": "none", "typ": "grant+jwt"}, jwt.decode(
        t, options={"verify_signature": False}), None), "grant.bad_algorithm"),
    ("other-key", lambda t: _forged({"kid": jwt.get_unverified_header(t)["kid"], "typ": "grant+jwt"}, jwt.decode(
        t, options={"verify_signature": False}), Ed25519PrivateKey.generate()), "grant.bad_signature"),
    ("unknown-kid", lambda t: _forged({"kid": "someone-else", "typ": "grant+jwt"}, jwt.decode(
        t, options={"verify_signature": False}), Ed25519PrivateKey.generate()), "grant.unknown_key"),
    ("plain-jwt", lambda t: _forged({"kid": jwt.get_unverified_header(t)["kid"], "typ": "JWT"}, jwt.decode(
        t, options={"verify_signature": False}), Ed25519PrivateKey.generate()), "grant.malformed"),
    ("tampered-claims", _tampered, "grant.bad_signature"),
]


@pytest.mark.parametrize(("forge", "code"), [case[1:] for case in GARBAGE_GRANTS],
                         ids=[case[0] for case in GARBAGE_GRANTS])
def test_consume_refuses_a_grant_that_is_not_one_of_ours(
    cli: Run, home: Path, tmp_path: Path, populated: dict[str, Any], forge: Callable[[str], str], code: str
) -> None:
    action = write(tmp_path / "action.json", spec_of(seed_request("small-payment")))
    before = snapshot(home)
    cli("consume", "--grant", forge(populated["grant"]), "--executor", "payments-service", action,
        "--home", home).expect_refused(code, 3)
    _assert_only_new_audit_entry(before, snapshot(home), "grant.refused", code)
    # The real grant is still good: the refusal consumed nothing.
    cli("consume", "--grant", populated["grant"], "--executor", "payments-service", action, "--home", home).ok()


def test_consume_with_a_garbage_grant_as_a_real_process(interlock: Run, home: Path, tmp_path: Path,
                                                        populated: dict[str, Any]) -> None:
    action = write(tmp_path / "action.json", spec_of(seed_request("small-payment")))
    before = snapshot(home)
    interlock("consume", "--grant", "garbage", "--executor", "payments-service", action, "--home", home).expect_refused(
        "grant.malformed", 3)
    _assert_only_new_audit_entry(before, snapshot(home), "grant.refused", "grant.malformed")


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (json.dumps(spec_of(seed_request("small-payment"))).replace(AMOUNT, AMOUNT + ', "amount": 9').encode(),
         "input.duplicate_key"),
        (json.dumps(spec_of(seed_request("small-payment"))).replace(AMOUNT, '"amount": NaN').encode(),
         "input.invalid"),
        (json.dumps({**spec_of(seed_request("small-payment")), "principal": {"id": "x", "kind": "agent"}}).encode(),
         "input.unknown_field"),
        (b"[]", "input.invalid"),
    ],
    ids=["duplicate-key", "nan", "request-fields-in-an-action", "array"],
)
def test_consume_refuses_a_bad_action_document_and_keeps_the_grant(
    cli: Run, home: Path, tmp_path: Path, populated: dict[str, Any], document: bytes, code: str
) -> None:
    before = snapshot(home)
    cli("consume", "--grant", populated["grant"], "--executor", "payments-service",
        write(tmp_path / "action.json", document), "--home", home).expect_refused(code, 2)
    assert snapshot(home) == before


def test_report_for_a_grant_that_does_not_exist(cli: Run, home: Path, populated: dict[str, Any]) -> None:
    before = snapshot(home)
    cli("report", "grt_nope", "--result", "succeeded", "--home", home).expect_refused("grant.not_issued", 3)
    grant_jti = jwt.decode(populated["grant"], options={"verify_signature": False})["jti"]
    cli("report", grant_jti, "--result", "succeeded", "--home", home).expect_refused("grant.not_consumed", 3)
    assert snapshot(home) == before


def test_status_of_a_request_that_does_not_exist(cli: Run, home: Path, populated: dict[str, Any]) -> None:
    cli("status", "req_nope", "--home", home).expect_refused("request.not_found", 3)
