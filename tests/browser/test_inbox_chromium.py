"""The approver inbox in a real browser: Debian's Chromium, driven by Playwright, against `interlock serve`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.served import seed_callers, seeded_home, serving

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: `make test` installs Debian's chromium as root, or run"
                " `apt-get install -y chromium`", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency: pip install -e '.[dev]'")

# Debian's browser only: Playwright never downloads one here (no `playwright install`).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE = "<img src=x onerror=alert(1)>"
PAYMENT = {
    "on_behalf_of": [{"id": "user:ceo", "kind": "human"}],
    "action": "payments.transfer",
    "resource": "account:treasury",
    "params": {"amount": 48000, "currency": "EUR", "recipient": "GB33BUKB20201555555555", "memo": HOSTILE},
    "channel": "chat",
    "justification": "CEO asked in chat",
}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`interlock serve` on a free loopback port, with the seed policy and a token per caller."""
    home = seeded_home(tmp_path)
    tokens = seed_callers(home)
    with serving(home) as base:
        yield base, tokens


def _long_poll_until_decided(base: str, token: str, request_id: str, result: dict[str, Any]) -> None:
    """The requester's side, as a CIBA client polls: long-poll again after each change until it is decided."""
    with httpx.Client(base_url=base, timeout=90, headers={"Authorization": f"Bearer {token}"}) as http:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = http.get(f"/v1/requests/{request_id}", params={"wait": 60}).json()
            result["polls"] = result.get("polls", 0) + 1
            if state["outcome"] != "pending_approval":
                result["state"] = state
                return


@pytest.mark.slow
def test_an_approver_sees_a_hostile_param_as_text_approves_and_the_requesters_long_poll_gets_the_grant(
    served: tuple[str, dict[str, str]],
) -> None:
    base, tokens = served
    submitted = httpx.post(f"{base}/v1/requests", json=PAYMENT, headers={"Authorization": f"Bearer {tokens['agent']}"})
    assert submitted.status_code == 201 and submitted.json()["outcome"] == "pending_approval", submitted.text
    request_id = submitted.json()["request_id"]
    code = submitted.json()["approval"]["binding_code"]  # the requester tells it to the approvers
    polled: dict[str, Any] = {}
    requester = threading.Thread(target=_long_poll_until_decided, args=(base, tokens["agent"], request_id, polled))
    requester.start()

    dialogs: list[str] = []
    console: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            for approver in ("alice", "bob"):
                context = browser.new_context()  # each approver in their own browser session
                page = context.new_page()
                page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
                page.on("console", lambda message: console.append(message.text))
                page.goto(f"{base}/inbox/login")
                page.fill("#token", tokens[approver])
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/inbox")
                page.click(f"a[href='/inbox/requests/{request_id}']")
                page.wait_for_url(f"{base}/inbox/requests/{request_id}")

                params = page.inner_text("pre.params")
                assert json.loads(params)["memo"] == HOSTILE  # the exact param, shown as text
                assert HOSTILE in page.inner_text("main")
                assert page.locator("main img").count() == 0
                assert "user:ceo" in page.inner_text("ol.chain") and "chat" in page.inner_text("main")

                assert page.inner_text("span.binding-code") == code
                page.fill("#comment", f"{approver} called the CEO back")
                page.fill("#binding_code", code.lower())
                page.click("button[value=approve]")
                page.wait_for_url(f"{base}/inbox/requests/{request_id}?done=approved")
                assert "You approved this request." in page.inner_text("main")
                context.close()
        finally:
            browser.close()

    requester.join(timeout=90)
    assert not requester.is_alive(), "the requester's long-poll never returned"
    state = polled["state"]
    assert state["outcome"] == "approved" and state["grant"], state
    assert sorted((a["approver"], a["channel"]) for a in state["approvals"]) == [("user:alice", "web"),
                                                                                 ("user:bob", "web")]
    assert dialogs == [], dialogs  # no script ran
    # The pages need nothing the Content-Security-Policy blocks (a blocked stylesheet would be logged here).
    assert not [line for line in console if "Content Security Policy" in line], console
    consumed = httpx.post(f"{base}/v1/grants/consume", headers={"Authorization": f"Bearer {tokens['payments']}"},
                          json={"grant": state["grant"], "action": PAYMENT["action"], "resource": PAYMENT["resource"],
                                "params": PAYMENT["params"]})
    assert consumed.status_code == 200 and consumed.json()["consumed"] is True, consumed.text
