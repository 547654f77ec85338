"""Grant claims: what a grant says (RFC 7519, RFC 8693 `act`, RFC 9396) and the checks at consume."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from conftest import ceo_payment
from interlock.core.action import ActionRequest, parse_request
from interlock.core.errors import GrantError
from interlock.core.grant import (
    AUTHORIZATION_DETAILS_TYPE,
    REQUIRED_CLAIMS,
    GrantDetails,
    build_claims,
    check_claims,
    subject_and_actors,
)

ISSUED = 1_795_000_000
TTL = 300
APPROVALS = [
    {"id": "apr_1", "approver": "user:alice", "channel": "web", "auth": "session"},
    {"id": "apr_2", "approver": "user:bob", "channel": "api", "auth": "token"},
]


def request_with(delegators: list[str]) -> ActionRequest:
    document = ceo_payment()
    document["on_behalf_of"] = [{"id": d, "kind": "human"} for d in delegators]
    return parse_request(document)


def claims_for(request: ActionRequest | None = None, **overrides: Any) -> dict[str, Any]:
    request = request or parse_request(ceo_payment())
    arguments: dict[str, Any] = {
        "issuer": "interlock", "request": request, "request_id": "req_1", "digest": request.digest(),
        "executor": "payments-service", "jti": "grt_1", "issued_at": ISSUED, "ttl": TTL,
        "policy_version": "v" * 64, "approvals": APPROVALS,
    }
    arguments.update(overrides)
    return build_claims(**arguments)


def check(claims: dict[str, Any], **overrides: Any) -> GrantDetails:
    arguments: dict[str, Any] = {
        "executor": "payments-service", "digest": parse_request(ceo_payment()).digest(), "now": ISSUED + 10,
    }
    arguments.update(overrides)
    return check_claims(claims, **arguments)


def refusal(claims: dict[str, Any], **overrides: Any) -> GrantError:
    with pytest.raises(GrantError) as caught:
        check(claims, **overrides)
    return caught.value


# --- build_claims --------------------------------------------------------------------------------


def test_claims_name_issuer_principal_executor_times_and_id() -> None:
    claims = claims_for()
    assert claims["iss"] == "interlock"
    assert claims["sub"] == "user:ceo"  # RFC 8693: the party acted for; the agent acts (`act`)
    assert claims["aud"] == "payments-service"
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (ISSUED, ISSUED, ISSUED + TTL)
    assert claims["jti"] == "grt_1"
    assert set(REQUIRED_CLAIMS) <= set(claims)


def test_authorization_details_bind_the_exact_action() -> None:
    request = parse_request(ceo_payment())
    claims = claims_for(request)
    assert claims["authorization_details"] == [{
        "type": AUTHORIZATION_DETAILS_TYPE,
        "action": "payments.transfer",
        "resource": "account:treasury",
        "digest": request.digest(),
        "request_id": "req_1",
        "approvals": APPROVALS,
        "policy_version": "v" * 64,
    }]


def test_each_approval_says_who_over_which_channel_and_how_they_authenticated_and_nothing_else() -> None:
    extra = [{**APPROVALS[0], "comment": "called the CEO back", "verdict": "approve"}]
    assert claims_for(approvals=extra)["authorization_details"][0]["approvals"] == [APPROVALS[0]]


def test_sub_is_the_outermost_delegator_and_act_nests_the_actors_current_first() -> None:
    # RFC 8693 §4.1: `act` is the current actor (the requester); each nested `act` is the actor before it.
    request = request_with(["user:ceo", "user:cfo", "agent:assistant"])
    claims = claims_for(request)
    assert claims["sub"] == "user:ceo"
    assert claims["act"] == {
        "sub": "agent:finance-assistant", "act": {"sub": "agent:assistant", "act": {"sub": "user:cfo"}}
    }


def test_a_single_delegator_is_the_subject_and_the_requester_acts() -> None:
    claims = claims_for()
    assert (claims["sub"], claims["act"]) == ("user:ceo", {"sub": "agent:finance-assistant"})


def test_no_delegation_means_the_requester_is_the_subject_and_no_act_claim() -> None:
    request = request_with([])
    assert subject_and_actors(request) == ("agent:finance-assistant", None)
    assert "act" not in claims_for(request)


def test_each_grant_gets_the_jti_it_is_given() -> None:
    assert claims_for(jti="grt_a")["jti"] != claims_for(jti="grt_b")["jti"]


# --- check_claims --------------------------------------------------------------------------------


def test_valid_claims_give_the_details_the_gate_consumes() -> None:
    details = check(claims_for())
    assert details == GrantDetails(
        jti="grt_1", request_id="req_1", action="payments.transfer", resource="account:treasury",
        digest=parse_request(ceo_payment()).digest(), policy_version="v" * 64, executor="payments-service",
        expires_at=ISSUED + TTL, approvals=tuple(APPROVALS),
    )


def test_expired_at_exp_and_after() -> None:
    claims = claims_for()
    check(claims, now=ISSUED + TTL - 1)
    assert refusal(claims, now=ISSUED + TTL).code == "grant.expired"
    assert refusal(claims, now=ISSUED + 10 * TTL).code == "grant.expired"


def test_not_yet_valid_before_nbf() -> None:
    claims = claims_for()
    check(claims, now=ISSUED)
    assert refusal(claims, now=ISSUED - 1).code == "grant.not_yet_valid"


def test_leeway_widens_both_ends_only_by_itself() -> None:
    claims = claims_for()
    check(claims, now=ISSUED - 5, leeway=5)
    assert refusal(claims, now=ISSUED - 6, leeway=5).code == "grant.not_yet_valid"
    check(claims, now=ISSUED + TTL + 4, leeway=5)
    assert refusal(claims, now=ISSUED + TTL + 5, leeway=5).code == "grant.expired"


def test_another_executor_is_refused() -> None:
    error = refusal(claims_for(), executor="deploy-executor")
    assert error.code == "grant.wrong_executor"


def test_another_action_is_refused() -> None:
    other = parse_request(ceo_payment(amount=48001)).digest()
    assert refusal(claims_for(), digest=other).code == "grant.digest_mismatch"


def test_a_wrong_digest_in_the_claims_is_refused() -> None:
    claims = claims_for(digest="0" * 64)
    assert refusal(claims).code == "grant.digest_mismatch"


@pytest.mark.parametrize("missing", REQUIRED_CLAIMS)
def test_every_required_claim_is_required(missing: str) -> None:
    claims = claims_for()
    del claims[missing]
    error = refusal(claims)
    assert error.code == "grant.malformed"
    assert missing in error.message


@pytest.mark.parametrize("name", ["iat", "nbf", "exp"])
@pytest.mark.parametrize("value", [True, False, "1795000300", 1_795_000_300.5, None])
def test_times_must_be_integers_and_not_booleans(name: str, value: Any) -> None:
    claims = claims_for()
    claims[name] = value
    error = refusal(claims)
    assert error.code == "grant.malformed"
    assert name in error.message


def test_two_authorization_details_entries_are_refused() -> None:
    claims = claims_for()
    harmless = copy.deepcopy(claims["authorization_details"][0])
    claims["authorization_details"].append(harmless)
    assert refusal(claims).code == "grant.malformed"


@pytest.mark.parametrize("details", [[], {}, "payments.transfer", [None], [["x"]], None])
def test_authorization_details_must_be_one_object(details: Any) -> None:
    claims = claims_for()
    claims["authorization_details"] = details
    assert refusal(claims).code == "grant.malformed"


def test_authorization_details_of_another_type_are_refused() -> None:
    claims = claims_for()
    claims["authorization_details"][0]["type"] = "payment_initiation"
    assert refusal(claims).code == "grant.malformed"


@pytest.mark.parametrize("field", ["action", "resource", "digest", "request_id", "policy_version"])
def test_authorization_details_fields_must_be_strings(field: str) -> None:
    claims = claims_for()
    claims["authorization_details"][0][field] = 1
    assert refusal(claims).code == "grant.malformed"
    del claims["authorization_details"][0][field]
    assert refusal(claims).code == "grant.malformed"


def test_a_malformed_grant_is_refused_before_its_times_are_looked_at() -> None:
    # A grant lacking its digest must never be reported as merely expired (or pass as valid).
    claims = claims_for()
    del claims["authorization_details"][0]["digest"]
    assert refusal(claims, now=ISSUED + 10 * TTL).code == "grant.malformed"


@pytest.mark.parametrize("approvals", [
    None, "apr_1", ["apr_1", "apr_2"], [{"id": "apr_1"}], [{**APPROVALS[0], "auth": None}], [None],
])
def test_approvals_must_be_a_list_of_id_approver_channel_auth(approvals: Any) -> None:
    claims = claims_for()
    claims["authorization_details"][0]["approvals"] = approvals
    assert refusal(claims).code == "grant.malformed"
    del claims["authorization_details"][0]["approvals"]
    assert refusal(claims).code == "grant.malformed"


def test_a_grant_without_approvals_lists_none() -> None:
    assert check(claims_for(approvals=[])).approvals == ()
