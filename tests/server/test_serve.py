"""`interlock serve` as a real process on a free port: a whole approval flow with plain httpx."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from e2e.served import seed_callers, seeded_home, serving

from .conftest import consumption, submission


@pytest.mark.slow
def test_interlock_serve_runs_the_ceo_payment_flow_over_real_http(tmp_path: Path) -> None:
    home = seeded_home(tmp_path)
    token = seed_callers(home)
    with serving(home) as base:

        def auth(who: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token[who]}"}

        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/readyz").status_code == 200
            pending = http.post("/v1/requests", json=submission(), headers=auth("agent"))
            assert pending.status_code == 201 and pending.json()["outcome"] == "pending_approval", pending.text
            request_id, code = pending.json()["request_id"], pending.json()["approval"]["binding_code"]
            for who in ("alice", "bob"):
                approved = http.post(f"/v1/requests/{request_id}/approvals",
                                     json={"decision": "approve", "binding_code": code}, headers=auth(who))
                assert approved.status_code == 200, approved.text
                assert "grant" not in approved.json(), "only the requester receives the grant"
            grant = http.get(f"/v1/requests/{request_id}", headers=auth("agent")).json()["grant"]
            consumed = http.post("/v1/grants/consume", json=consumption(grant), headers=auth("payments"))
            assert consumed.status_code == 200 and consumed.json()["consumed"] is True, consumed.text
            again = http.post("/v1/grants/consume", json=consumption(grant), headers=auth("payments"))
            assert again.status_code == 409 and again.json()["error"]["code"] == "grant.already_used"
