"""Action requests: strict parsing, and the digest a grant is bound to (INVARIANT 2)."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
import rfc8785

from conftest import ceo_payment, spec_of
from interlock.core.action import ActionRequest, ActionSpec, action_digest, parse_action, parse_request
from interlock.core.errors import RequestError


def refused(document: Any) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse_request(document)
    return caught.value


def test_a_valid_request_parses_from_bytes_str_and_dict() -> None:
    document = ceo_payment()
    from_dict = parse_request(document)
    assert parse_request(json.dumps(document)) == from_dict
    assert parse_request(json.dumps(document).encode()) == from_dict
    assert from_dict.principal.id == "agent:finance-assistant"
    assert from_dict.delegator_ids == ("user:ceo",)
    assert from_dict.params["amount"] == 48000


def test_a_parsed_request_cannot_be_mutated() -> None:
    request = parse_request(ceo_payment())
    with pytest.raises(ValueError):
        request.action = "payments.refund"  # type: ignore[misc]


def test_unknown_top_level_field_is_refused() -> None:
    document = {**ceo_payment(), "priority": "urgent"}
    error = refused(document)
    assert error.code == "input.unknown_field"
    assert error.detail["field"] == "priority"


def test_unknown_field_inside_principal_is_refused() -> None:
    document = ceo_payment()
    document["principal"]["verified"] = True
    error = refused(document)
    assert error.code == "input.unknown_field"
    assert error.detail["field"] == "principal.verified"


def test_unknown_field_inside_a_delegator_is_refused() -> None:
    document = ceo_payment()
    document["on_behalf_of"][0]["approved"] = True
    assert refused(document).code == "input.unknown_field"


@pytest.mark.parametrize("kind", ["robot", "Human", "", None, 1])
def test_unknown_principal_kinds_are_refused(kind: Any) -> None:
    document = ceo_payment()
    document["principal"]["kind"] = kind
    error = refused(document)
    assert error.code == "input.invalid"
    assert error.detail["field"] == "principal.kind"


@pytest.mark.parametrize(
    "action",
    ["", "payments..transfer", ".payments", "payments.", "payments transfer", "payments.*", "payments/transfer",
     "a" * 257],
)
def test_bad_action_names_are_refused(action: str) -> None:
    error = refused({**ceo_payment(), "action": action})
    assert error.code == "input.invalid"
    assert error.detail["field"] == "action"


@pytest.mark.parametrize("channel", ["", "Chat", "1chat", "chat room", "c" * 33, "chat\n"])
def test_bad_channel_names_are_refused(channel: str) -> None:
    error = refused({**ceo_payment(), "channel": channel})
    assert error.code == "input.invalid"
    assert error.detail["field"] == "channel"


@pytest.mark.parametrize("params", [[1, 2], "amount=1", 1, None, True])
def test_params_must_be_an_object(params: Any) -> None:
    error = refused({**ceo_payment(), "params": params})
    assert error.code == "input.invalid"
    assert error.detail["field"] == "params"


@pytest.mark.parametrize("missing", ["principal", "action", "resource", "channel"])
def test_required_fields_are_required(missing: str) -> None:
    document = ceo_payment()
    del document[missing]
    assert refused(document).code == "input.invalid"


def test_control_characters_in_ids_are_refused() -> None:
    document = ceo_payment()
    document["principal"]["id"] = "agent:a\nuser:ceo"
    assert refused(document).code == "input.invalid"


def test_a_document_that_is_not_an_object_is_refused() -> None:
    assert refused(b"[1, 2]").code == "input.invalid"


def test_strict_json_rules_apply_to_requests() -> None:
    text = json.dumps(ceo_payment()).replace('"amount": 48000', '"amount": 48000, "amount": 1')
    assert refused(text).code == "input.duplicate_key"
    # An already-parsed dict goes through the same value checks.
    assert refused(ceo_payment(amount=float("nan"))).code == "input.invalid"
    assert refused(ceo_payment(amount=2**53)).code == "input.invalid"


def test_parse_action_takes_exactly_action_resource_params() -> None:
    request = ceo_payment()
    spec = parse_action(spec_of(request))
    assert spec == parse_request(request).spec()
    with pytest.raises(RequestError) as caught:
        parse_action({**spec_of(request), "channel": "api"})
    assert caught.value.code == "input.unknown_field"


# --- the digest ------------------------------------------------------------------------------------


def jcs_sha256(action: str, resource: str, params: dict[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps({"action": action, "resource": resource, "params": params})).hexdigest()


def test_digest_is_sha256_of_rfc8785_canonical_action_resource_params() -> None:
    request = parse_request(ceo_payment())
    expected = jcs_sha256("payments.transfer", "account:treasury", request.params)
    assert request.digest() == expected
    assert request.spec().digest() == expected
    assert action_digest(request.action, request.resource, request.params) == expected


def test_digest_of_a_known_action_is_stable() -> None:
    # Pinned so that an accidental change of the canonical form (and of every issued grant) shows.
    canonical = b'{"action":"payments.transfer","params":{"amount":1,"to":"x"},"resource":"account:a"}'
    assert rfc8785.dumps({"resource": "account:a", "params": {"to": "x", "amount": 1},
                          "action": "payments.transfer"}) == canonical
    assert action_digest("payments.transfer", "account:a", {"to": "x", "amount": 1}) == hashlib.sha256(
        canonical
    ).hexdigest()


def test_digest_leaves_out_who_asked_and_how() -> None:
    a = parse_request(ceo_payment())
    b = parse_request({**ceo_payment(), "channel": "api", "justification": "other", "context": {}})
    assert a.digest() == b.digest()


def test_key_order_does_not_change_the_digest() -> None:
    params = {"amount": 10, "currency": "EUR", "meta": {"b": 1, "a": [1, {"y": 2, "x": 1}]}}
    reordered = {"meta": {"a": [1, {"x": 1, "y": 2}], "b": 1}, "currency": "EUR", "amount": 10}
    assert action_digest("p.t", "r", params) == action_digest("p.t", "r", reordered)
    text = '{"resource": "r", "params": {"meta": {"b": 1, "a": []}}, "action": "p.t"}'
    assert parse_action(text).digest() == action_digest("p.t", "r", {"meta": {"a": [], "b": 1}})


def test_one_and_one_point_zero_are_the_same_number_in_jcs() -> None:
    assert action_digest("p.t", "r", {"amount": 1}) == action_digest("p.t", "r", {"amount": 1.0})
    assert parse_action('{"action": "p.t", "resource": "r", "params": {"amount": 1.0}}').digest() == (
        parse_action('{"action": "p.t", "resource": "r", "params": {"amount": 1}}').digest()
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(action="payments.refund"),
        lambda d: d.update(resource="account:payroll"),
        lambda d: d["params"].update(amount=48001),
        lambda d: d["params"].update(amount=48000.5),
        lambda d: d["params"].update(amount="48000"),
        lambda d: d["params"].update(currency="eur"),
        lambda d: d["params"].update(recipient="GB33BUKB20201555555556"),
        lambda d: d["params"].update(note=None),
        lambda d: d["params"].pop("currency"),
        lambda d: d["params"].update(amount=[48000]),
        lambda d: d["params"].update(amount=True),
    ],
)
def test_any_change_of_the_action_changes_the_digest(change: Any) -> None:
    original = spec_of(ceo_payment())
    changed = copy.deepcopy(original)
    change(changed)
    assert ActionSpec(**changed).digest() != ActionSpec(**original).digest()


def test_true_and_one_do_not_collide() -> None:
    assert action_digest("p.t", "r", {"x": True}) != action_digest("p.t", "r", {"x": 1})


def test_a_value_that_cannot_be_canonicalized_is_refused() -> None:
    with pytest.raises(RequestError) as caught:
        action_digest("p.t", "r", {"x": float("nan")})
    assert caught.value.code == "input.invalid"


def test_request_with_no_params_has_an_empty_params_object() -> None:
    document = ceo_payment()
    del document["params"]
    request: ActionRequest = parse_request(document)
    assert request.params == {}
    assert request.digest() == jcs_sha256(request.action, request.resource, {})
