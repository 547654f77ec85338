"""The real ASGI app on a real SQLite file, with a credential for each kind of caller of the seed's first scenario."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from conftest import FixedClock
from interlock.core.policy import Policy
from interlock.credentials import Credentials
from interlock.gate import Gate
from interlock.keys import KeyRing
from interlock.server import create_app
from interlock.store.sqlite import SqliteStore

KNOWN_RECIPIENTS = {"known_recipients": ["DE89370400440532013000"]}


@dataclass
class Api:
    """An HTTP client on the real ASGI app, the gate behind it, and a bearer token per caller name."""

    app: FastAPI
    portal: BlockingPortal
    client: httpx.AsyncClient
    gate: Gate
    credentials: Credentials
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def call(self, method: str, path: str, who: str | None = None, **kwargs: Any) -> Any:
        headers = {**(self.auth(who) if who else {}), **kwargs.pop("headers", {})}
        return self.portal.call(lambda: self.client.request(method, path, headers=headers, **kwargs))


@pytest.fixture
def server_store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "interlock.db")
    yield store
    store.close()


@pytest.fixture
def api(server_store: SqliteStore, seed_policy: Policy, clock: FixedClock) -> Iterator[Api]:
    gate = Gate(server_store, seed_policy, KeyRing.generate(), clock=clock)
    credentials = Credentials(server_store, clock=clock)
    app = create_app(gate, credentials)
    # Like starlette's TestClient (which now wants httpx2): httpx's ASGI transport, called from this thread.
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://interlock")
        api = Api(app, portal, client, gate, credentials)
        for name, role, subject, kind, attributes in [
            ("agent", "principal", "agent:finance-assistant", "agent", KNOWN_RECIPIENTS),
            ("payments", "principal", "payments-service", "service", {}),
            ("other-agent", "principal", "agent:other", "agent", {"known_recipients": []}),
            ("alice", "approver", "user:alice", None, None),
            ("bob", "approver", "user:bob", None, None),
            ("ceo", "approver", "user:ceo", None, None),
            ("admin", "admin", "user:root", None, None),
        ]:
            api.tokens[name] = credentials.add(role, subject, kind, attributes).token  # type: ignore[arg-type]
        yield api
        portal.call(client.aclose)


def submission(**changes: Any) -> dict[str, Any]:
    """The seed's CEO payment as the agent sends it over the API: no principal (the credential says who)."""
    body: dict[str, Any] = {
        "on_behalf_of": [{"id": "user:ceo", "kind": "human"}],
        "action": "payments.transfer",
        "resource": "account:treasury",
        "params": {"amount": 48000, "currency": "EUR", "recipient": "GB33BUKB20201555555555"},
        "channel": "chat",
        "justification": "CEO asked in chat",
    }
    body.update(changes)
    return body


def consumption(grant: str, body: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    request = body or submission()
    return {"grant": grant, "action": request["action"], "resource": request["resource"],
            "params": request["params"], **changes}


def expect_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert the API's refusal contract: the status, and `{"error": {code, message}}`."""
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"], error
    return error
