"""`GET /metrics`: the series move as requests are submitted, approved, consumed and refused; scraping is admin-only."""

from __future__ import annotations

import httpx
from anyio.from_thread import start_blocking_portal
from prometheus_client.parser import text_string_to_metric_families

from conftest import SEED, FixedClock
from interlock.core.policy import load_policy
from interlock.server import create_app

from .conftest import Api, consumption, expect_error, submission

SMALL = {"amount": 100, "currency": "EUR", "recipient": "DE89370400440532013000"}


def scrape(api: Api) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an admin scrape, by (name, labels)."""
    response = api.call("GET", "/metrics", "admin")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_the_series_follow_a_whole_approval_flow_and_its_refusals(api: Api) -> None:
    before = scrape(api)
    assert value(before, "interlock_decisions_total", outcome="allowed") == 0
    assert value(before, "interlock_operation_duration_seconds_count", operation="submit") == 0

    allowed = api.call("POST", "/v1/requests", "agent", json=submission(params=SMALL, on_behalf_of=[])).json()
    api.call("POST", "/v1/requests", "agent", json=submission(action="payments.refund"))  # no rule: denied
    pending = api.call("POST", "/v1/requests", "agent", json=submission()).json()
    request_id = pending["request_id"]
    expect_error(api.call("POST", f"/v1/requests/{request_id}/approvals", "ceo", json={"decision": "approve"}),
                 409, "approval.not_independent")
    approve = {"decision": "approve", "binding_code": pending["approval"]["binding_code"]}
    api.call("POST", f"/v1/requests/{request_id}/approvals", "alice", json=approve)
    assert api.call("POST", f"/v1/requests/{request_id}/approvals", "bob", json=approve).json()["outcome"] == "approved"
    granted = api.call("GET", f"/v1/requests/{request_id}", "agent").json()  # only the requester gets the grant
    assert api.call("POST", "/v1/grants/consume", "payments", json=consumption(granted["grant"])).status_code == 200
    expect_error(api.call("POST", "/v1/grants/consume", "payments", json=consumption(granted["grant"])),
                 409, "grant.already_used")
    assert allowed["outcome"] == "allowed"

    after = scrape(api)
    assert value(after, "interlock_decisions_total", outcome="allowed") == 1
    assert value(after, "interlock_decisions_total", outcome="denied") == 1
    assert value(after, "interlock_decisions_total", outcome="pending_approval") == 1
    assert value(after, "interlock_approvals_total", verdict="approve") == 2
    assert value(after, "interlock_rubber_stamp_approvals_total") == 0
    assert value(after, "interlock_consumes_total", result="consumed") == 1
    assert value(after, "interlock_consumes_total", result="refused") == 1
    assert value(after, "interlock_refusals_total", operation="approve", code="approval.not_independent") == 1
    assert value(after, "interlock_refusals_total", operation="consume", code="grant.already_used") == 1
    assert value(after, "interlock_refusals_total", operation="submit", code="policy.no_matching_rule") == 1
    assert value(after, "interlock_operation_duration_seconds_count", operation="submit") == 3
    assert value(after, "interlock_operation_duration_seconds_count", operation="approve") == 3
    assert value(after, "interlock_operation_duration_seconds_count", operation="consume") == 2
    assert value(after, "interlock_operation_duration_seconds_bucket", operation="consume", le="+Inf") == 2
    assert value(after, "interlock_operation_duration_seconds_sum", operation="submit") > 0


def test_a_rejection_and_a_refused_submit_are_counted(api: Api) -> None:
    pending = api.call("POST", "/v1/requests", "agent", json=submission()).json()
    api.call("POST", f"/v1/requests/{pending['request_id']}/approvals", "alice", json={"decision": "reject"})
    expect_error(api.call("POST", "/v1/requests", "agent", json=submission(executor="someone-else")),
                 400, "input.wrong_executor")
    samples = scrape(api)
    assert value(samples, "interlock_approvals_total", verdict="reject") == 1
    assert value(samples, "interlock_refusals_total", operation="submit", code="input.wrong_executor") == 1


def test_metrics_need_an_admin_credential(api: Api) -> None:
    expect_error(api.call("GET", "/metrics"), 401, "auth.missing")
    expect_error(api.call("GET", "/metrics", "agent"), 403, "auth.forbidden")
    expect_error(api.call("GET", "/metrics", "alice"), 403, "auth.forbidden")
    expect_error(api.call("GET", "/metrics", headers={"Authorization": "Bearer ilk_forged"}), 401, "auth.invalid")
    assert api.call("GET", "/metrics", "admin").status_code == 200


def test_public_metrics_need_no_credential_and_each_app_has_its_own_registry(api: Api) -> None:
    api.call("POST", "/v1/requests", "agent", json=submission(params=SMALL, on_behalf_of=[]))
    public = create_app(api.gate, api.credentials, metrics_public=True)  # now the gate's observer
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=public), base_url="http://interlock")
        try:
            response = portal.call(lambda: client.get("/metrics"))
        finally:
            portal.call(client.aclose)
    assert response.status_code == 200
    assert 'interlock_decisions_total{outcome="allowed"}' not in response.text  # counted by the first app only
    assert 'interlock_operation_duration_seconds_count{operation="submit"} 0.0' in response.text


def test_an_approval_sooner_than_the_review_time_is_counted_as_a_rubber_stamp(api: Api, clock: FixedClock) -> None:
    seed = (SEED / "policy.yaml").read_text()
    api.gate.policy = load_policy(seed.replace("expires_in: 15m", "expires_in: 15m\n      min_review: 30s", 1))
    pending = api.call("POST", "/v1/requests", "agent", json=submission()).json()
    approve = {"decision": "approve", "binding_code": pending["approval"]["binding_code"]}
    clock.advance(seconds=29)
    api.call("POST", f"/v1/requests/{pending['request_id']}/approvals", "alice", json=approve)
    assert value(scrape(api), "interlock_rubber_stamp_approvals_total") == 1
    clock.advance(seconds=1)  # 30 s after submission: reviewed long enough
    approved = api.call("POST", f"/v1/requests/{pending['request_id']}/approvals", "bob", json=approve).json()

    assert approved["outcome"] == "approved", "a rubber stamp still counts"
    assert {a["approver"]: a["rubber_stamp"] for a in approved["approvals"]} == {"user:alice": True,
                                                                                  "user:bob": False}
    samples = scrape(api)
    assert value(samples, "interlock_rubber_stamp_approvals_total") == 1
    assert value(samples, "interlock_approvals_total", verdict="approve") == 2
