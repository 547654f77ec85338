"""`interlock serve` as a real process on a free port: a whole approval flow with plain httpx."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import SEED

from .conftest import KNOWN_RECIPIENTS, consumption, submission


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _interlock(home: Path, *args: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")} | {"INTERLOCK_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "interlock.cli", *args], capture_output=True, env=env, timeout=60,
                          check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_interlock_serve_runs_the_ceo_payment_flow_over_real_http(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(SEED / "policy.yaml", home / "policy.yaml")
    token = {
        "agent": _interlock(home, "principals", "add", "agent:finance-assistant", "--kind", "agent",
                            "--attributes", json.dumps(KNOWN_RECIPIENTS))["token"],
        "payments": _interlock(home, "principals", "add", "payments-service", "--kind", "service")["token"],
        "alice": _interlock(home, "approvers", "add", "user:alice")["token"],
        "bob": _interlock(home, "approvers", "add", "user:bob")["token"],
    }
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")} | {"INTERLOCK_HOME": str(home)}
    server = subprocess.Popen([sys.executable, "-m", "interlock.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # bounded: the process is starting, there is no event to wait on
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up within 30 s"
            time.sleep(0.1)

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
            grant = approved.json()["grant"]
            consumed = http.post("/v1/grants/consume", json=consumption(grant), headers=auth("payments"))
            assert consumed.status_code == 200 and consumed.json()["consumed"] is True, consumed.text
            again = http.post("/v1/grants/consume", json=consumption(grant), headers=auth("payments"))
            assert again.status_code == 409 and again.json()["error"]["code"] == "grant.already_used"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        if server.stderr:
            server.stderr.close()
