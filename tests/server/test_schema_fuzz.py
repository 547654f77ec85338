"""schemathesis against the app's own OpenAPI schema, in-process over ASGI: no input may produce a 5xx,
and every response must be one the schema documents.

Each operation gets a bounded number of valid and invalid cases (hypothesis, derandomized), called with the
credential that gets past authentication so the fuzzing reaches the gate. The cases are driven with
`@given(operation.as_strategy(...))` rather than schemathesis' pytest plugin, whose fixture-based loader
does not run under pytest 9.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import Api

# Every operation of the schema, with the caller whose credential it needs (None: public).
OPERATIONS = {
    ("POST", "/v1/requests"): "agent",
    ("GET", "/v1/requests/{request_id}"): "agent",
    ("POST", "/v1/requests/{request_id}/approvals"): "alice",
    ("POST", "/v1/requests/{request_id}/break-glass"): "alice",
    ("POST", "/v1/requests/{request_id}/break-glass/reviews"): "alice",
    ("POST", "/v1/grants/consume"): "payments",
    ("POST", "/v1/grants/{jti}/result"): "payments",
    ("GET", "/v1/audit/verify"): "admin",
    ("GET", "/v1/audit/entries/{index}/proof"): "admin",
    ("GET", "/v1/audit/consistency"): None,
    ("GET", "/v1/audit/checkpoint"): None,
    ("GET", "/v1/audit/public-key"): None,
    ("GET", "/metrics"): "admin",
    ("GET", "/.well-known/jwks.json"): None,
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("INTERLOCK_FUZZ_EXAMPLES", "25"))  # per operation and mode


def test_every_operation_of_the_schema_is_fuzzed(api: Api) -> None:
    schema = api.call("GET", "/openapi.json").json()
    documented = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    assert documented == set(OPERATIONS)


# An operation without parameters or body has no invalid input to generate.
CASES = [(method, path, mode) for method, path in OPERATIONS for mode in GenerationMode
         if mode is GenerationMode.POSITIVE or method == "POST" or "{" in path]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=lambda x: getattr(x, "value", x))
def test_no_input_produces_a_server_error_or_an_undocumented_response(
    api: Api, method: str, path: str, mode: GenerationMode
) -> None:
    # Something to read, approve and consume, so the gate sees more than unknown ids.
    pending = api.call("POST", "/v1/requests", "agent", json={
        "action": "payments.transfer", "resource": "account:treasury",
        "params": {"amount": 5000, "currency": "EUR", "recipient": "GB33BUKB20201555555555"}}).json()
    api.gate.ledger.checkpoint()  # and a signed tree, so proofs get past `audit.no_checkpoint`
    operation = schemathesis.openapi.from_asgi("/openapi.json", api.app)[path][method]
    who = OPERATIONS[(method, path)]
    # Valid cases name the pending request, so approvals and reads get past `request.not_found`.
    positive = mode is GenerationMode.POSITIVE
    known = {"request_id": pending["request_id"]} if "{request_id}" in path and positive else None
    # A valid `wait` long-polls for up to 60 s by design (tested in test_flow); here it returns at once.
    query = {"wait": 0} if method == "GET" and known else None

    @given(case=operation.as_strategy(mode, path_parameters=known, query=query))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: schemathesis.Case) -> None:
        headers = {**(case.headers or {}), **(api.auth(who) if who else {})}
        # call_and_validate raises on any failed check (5xx, undocumented status or schema); and, plainly:
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        assert response.status_code < 500, response.text

    fuzz()

