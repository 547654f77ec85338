"""The long-poll's ETag: a change that lands between two polls ends the next poll at once, not at its timeout."""

from __future__ import annotations

import time

from .conftest import Api, submission


def test_a_poll_naming_an_older_state_returns_at_once(api: Api) -> None:
    pending = api.call("POST", "/v1/requests", "agent", json=submission()).json()
    path = f"/v1/requests/{pending['request_id']}"
    first = api.call("GET", path, "agent")
    seen = first.headers["etag"]

    # The state changes between this client's polls: alice approves.
    approve = {"decision": "approve", "binding_code": pending["approval"]["binding_code"]}
    assert api.call("POST", f"{path}/approvals", "alice", json=approve).status_code == 200

    started = time.monotonic()
    changed = api.call("GET", path, "agent", params={"wait": "30"}, headers={"If-None-Match": seen})
    assert time.monotonic() - started < 5, "a poll naming an older state must not wait"
    assert changed.json()["approval"]["progress"][0]["approved_by"] == ["user:alice"]
    assert changed.headers["etag"] != seen


def test_the_etag_names_the_state_and_a_poll_on_the_current_state_times_out_unchanged(api: Api) -> None:
    pending = api.call("POST", "/v1/requests", "agent", json=submission()).json()
    path = f"/v1/requests/{pending['request_id']}"
    current = api.call("GET", path, "agent")
    again = api.call("GET", path, "agent")
    assert current.headers["etag"] == again.headers["etag"]

    held = api.call("GET", path, "agent", params={"wait": "0.2"}, headers={"If-None-Match": current.headers["etag"]})
    assert held.status_code == 200
    assert held.headers["etag"] == current.headers["etag"]
    assert held.json() == current.json()
