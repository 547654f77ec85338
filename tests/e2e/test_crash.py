"""Faults under load, at the HTTP level: `kill -9` of gate nodes at random moments of a stream of submits,
approvals and consumes, on both stores; and a PostgreSQL that goes away mid-stream and comes back.

After every fault: the audit log verifies, no grant is consumed without its `grant.consumed` entry (nor the
other way round), no grant is consumed twice, and nothing a client was told had succeeded is missing.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from store.postgres_support import PrivateServer, fresh_schema, private_server

from .nodes import (
    APPROVER,
    Launcher,
    Node,
    Snapshot,
    http_client,
    jti_of,
    launching,
    prepare,
    running,
    snapshot,
    transfer,
)

pytestmark = pytest.mark.slow

# Kills per store; INTERLOCK_CRASH_ROUNDS=200 for a longer hunt.
ROUNDS = int(os.environ.get("INTERLOCK_CRASH_ROUNDS", "50"))
# A killed node restarts forked by a launcher that has done the imports (a cold start is ~1.3 s of CPU, mostly
# imports, on a slow 2-core machine); every COLD_EVERY-th restart is a new interpreter, as an operator's would be.
COLD_EVERY = 10
NODES = 3
WORKERS = 4  # concurrent flows in the stream
# Checkpoints are signed twice a second on every node: a kill may land while one is being signed.
SERVE_OPTIONS = ("--checkpoint-every", "0.5")
ATTEMPTS = 20  # a step whose answer was lost is tried again, up to this many times


class Unanswered(Exception):
    """The call got no answer we can read as done or not done: the node died under it, or the store did."""


@dataclass
class Seen:
    """What clients were told, with when (time.monotonic()) the answer arrived."""

    submitted: dict[str, float] = field(default_factory=dict)  # request id -> 201
    approved: dict[str, float] = field(default_factory=dict)  # request id -> 200 to the approval
    consumed: dict[str, list[float]] = field(default_factory=dict)  # jti -> every 200 to a consume
    unanswered: Counter[str] = field(default_factory=Counter)  # operation -> calls without an answer
    flows: int = 0  # submit → (approve →) consume completed

    def check(self, stored: Snapshot, taken_at: float) -> None:
        """Everything acknowledged before `taken_at` is in `stored`; no grant was ever acknowledged twice."""
        twice = {jti: len(times) for jti, times in self.consumed.items() if len(times) > 1}
        assert not twice, f"grants consumed successfully more than once: {twice}"
        lost = [rid for rid, at in self.submitted.items() if at < taken_at and rid not in stored.requests]
        assert not lost, f"accepted requests missing from the store: {lost}"
        lost = [rid for rid, at in self.approved.items()
                if at < taken_at and (rid, APPROVER, "approve") not in stored.approvals]
        assert not lost, f"accepted approvals missing from the store: {lost}"
        lost = [jti for jti, times in self.consumed.items() if times[0] < taken_at and not stored.consumed_at.get(jti)]
        assert not lost, f"acknowledged consumes missing from the store: {lost}"


class Stream:
    """WORKERS clients running flows back to back over whichever nodes are up: a small transfer (allowed, then
    consumed) or a large one (approved by the approver, its grant read by the requester, then consumed). Each
    call goes to a random live node; a step whose answer is lost is tried again, on a random live node."""

    def __init__(self, live: list[Node], tokens: dict[str, str], *, store_can_fail: bool = False) -> None:
        self.live, self.tokens, self.store_can_fail = live, tokens, store_can_fail
        self.seen = Seen()
        self.stopping = asyncio.Event()
        self.numbers = itertools.count()
        self.unexpected: list[str] = []

    async def run(self) -> None:
        await asyncio.gather(*(self._worker() for _ in range(WORKERS)))

    async def _call(self, http: httpx.AsyncClient, who: str, method: str, path: str, operation: str,
                    body: dict[str, Any] | None = None) -> httpx.Response:
        node = random.choice(self.live)
        try:
            response = await http.request(method, f"{node.base}{path}", json=body,
                                          headers={"Authorization": f"Bearer {self.tokens[who]}"})
        except httpx.TransportError:
            self.seen.unanswered[operation] += 1
            raise Unanswered(operation) from None
        if response.status_code == 503 and self.store_can_fail:
            # The store went away: maybe before, maybe after its commit. Either way fail closed, never a 500.
            assert response.json()["error"]["code"] == "store.unavailable", response.text
            self.seen.unanswered[operation] += 1
            raise Unanswered(operation)
        return response

    async def _step(self, http: httpx.AsyncClient, who: str, method: str, path: str, operation: str,
                    ok: int, body: dict[str, Any] | None = None, again: tuple[str, ...] = ()) -> httpx.Response | None:
        """Call until answered: the response, or None when the stream stops first. After a lost answer, the
        refusals in `again` mean an earlier try did it (and are returned, for the caller to tell apart)."""
        lost = False
        for _ in range(ATTEMPTS):
            if self.stopping.is_set():
                return None
            try:
                response = await self._call(http, who, method, path, operation, body)
            except Unanswered:
                lost = True
                await asyncio.sleep(0.05)  # a pause before trying again: the node that answers may be restarting
                continue
            code = response.json().get("error", {}).get("code") if response.status_code != ok else None
            if response.status_code == ok or (lost and code in again):
                return response
            self.unexpected.append(f"{operation}: {response.status_code} {response.text}")
            raise AssertionError(self.unexpected[-1])
        return None

    async def _worker(self) -> None:
        async with http_client() as http:
            while not self.stopping.is_set():
                number = next(self.numbers)
                large = number % 2 == 1
                action = transfer(number, 5000 if large else 100)
                try:
                    submitted = await self._call(http, "agent", "POST", "/v1/requests", "submit", action)
                except Unanswered:
                    continue  # the request may exist or not; nobody holds its grant either way
                assert submitted.status_code == 201, submitted.text
                state = submitted.json()
                request_id = state["request_id"]
                self.seen.submitted[request_id] = time.monotonic()
                if large:
                    assert state["outcome"] == "pending_approval", state
                    approval = {"decision": "approve", "binding_code": state["approval"]["binding_code"]}
                    approved = await self._step(http, "approver", "POST", f"/v1/requests/{request_id}/approvals",
                                                "approve", 200, approval,
                                                again=("request.not_pending", "approval.duplicate"))
                    if approved is None:
                        continue
                    if approved.status_code == 200:
                        self.seen.approved[request_id] = time.monotonic()
                    read = await self._step(http, "agent", "GET", f"/v1/requests/{request_id}", "read", 200)
                    if read is None:
                        continue
                    state = read.json()
                assert state["outcome"] in ("allowed", "approved") and state.get("grant"), state
                grant = state["grant"]
                consumed = await self._step(http, "executor", "POST", "/v1/grants/consume", "consume", 200,
                                            {"grant": grant, **action}, again=("grant.already_used",))
                if consumed is not None and consumed.status_code == 200:
                    self.seen.consumed.setdefault(jti_of(grant), []).append(time.monotonic())
                if consumed is not None:
                    self.seen.flows += 1


async def _verified(node: Node, tokens: dict[str, str]) -> dict[str, Any]:
    async with http_client(tokens["admin"]) as http:
        response = await http.get(f"{node.base}/v1/audit/verify")
    assert response.status_code == 200, response.text
    verification = response.json()
    assert verification["ok"] is True and verification["problems"] == [], verification
    return verification


async def _check(node: Node, tokens: dict[str, str], home: Path, url: str | None, seen: Seen) -> Snapshot:
    """The invariants, on a snapshot of the store taken now, and the log verified by `node`."""
    taken_at = time.monotonic()
    stored = await asyncio.to_thread(snapshot, home, url)
    stored.check()
    seen.check(stored, taken_at)
    verification = await _verified(node, tokens)
    assert verification["entries"] >= len(stored.audit)
    return stored


async def _kill_rounds(nodes: list[Node], tokens: dict[str, str], home: Path, url: str | None,
                       warm: Launcher) -> tuple[Seen, int]:
    """ROUNDS times: at a random moment of the stream, kill -9 a random live node, start it again, and check
    the store once it is ready. Up to NODES - 1 nodes are down at once; the others carry the stream."""
    live = list(nodes)
    stream = Stream(live, tokens)
    checks = 0
    restart_seconds: dict[str, list[float]] = {"warm": [], "cold": []}

    async def revive(node: Node, cold: bool) -> None:
        nonlocal checks
        started = time.monotonic()
        node.start(None if cold else warm)
        await node.wait_ready()
        restart_seconds["cold" if cold else "warm"].append(time.monotonic() - started)
        await _check(node, tokens, home, url, stream.seen)  # before it rejoins: no kill interrupts the check
        checks += 1
        live.append(node)

    async def chaos() -> None:
        restarting: set[asyncio.Task[None]] = set()

        def harvest() -> None:  # a restart or its check that failed fails the test now
            for task in [t for t in restarting if t.done()]:
                restarting.discard(task)
                task.result()

        try:
            for number in range(1, ROUNDS + 1):
                await asyncio.sleep(random.uniform(0.05, 0.6))  # a random moment: the stream decides what it hits
                harvest()
                while len(live) < 2:  # one node always serves
                    await asyncio.wait(restarting, return_when=asyncio.FIRST_COMPLETED)
                    harvest()
                victim = random.choice(live)
                live.remove(victim)
                victim.kill()
                restarting.add(asyncio.create_task(revive(victim, cold=number % COLD_EVERY == 0)))
            while restarting:
                await asyncio.wait(restarting, return_when=asyncio.FIRST_COMPLETED)
                harvest()
        finally:
            stream.stopping.set()

    await asyncio.gather(stream.run(), chaos())
    assert checks == ROUNDS
    assert not stream.unexpected
    for kind, seconds in restart_seconds.items():
        if seconds:
            print(f"\n{len(seconds)} {kind} restarts took {min(seconds):.1f}–{max(seconds):.1f} s,"
                  f" median {sorted(seconds)[len(seconds) // 2]:.1f} s")
    return stream.seen, sum(node.starts for node in nodes) - len(nodes)


@contextmanager
def _store(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
    else:
        with fresh_schema() as url:  # skips, saying why, without INTERLOCK_TEST_POSTGRES
            yield url


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_kill_9_of_nodes_at_random_moments_loses_nothing_and_consumes_nothing_twice(
    kind: str, tmp_path: Path
) -> None:
    with _store(kind) as url:
        (tmp_path / "logs").mkdir()
        with launching(tmp_path / "logs" / "launcher.log") as warm:
            homes, tokens = prepare(tmp_path, NODES, url)
            with running(homes, url, tmp_path / "logs", *SERVE_OPTIONS) as nodes:
                seen, restarts = asyncio.run(_kill_rounds(nodes, tokens, homes[0], url, warm))
                final_verification = asyncio.run(_verified(nodes[0], tokens))
        stored = snapshot(homes[0], url)  # every node stopped: the final state

    assert restarts == ROUNDS
    stored.check()
    seen.check(stored, time.monotonic())
    assert final_verification["entries"] <= len(stored.audit)
    # The stream kept going through the kills, and the kills landed on calls in flight.
    assert seen.flows >= ROUNDS and seen.approved and seen.consumed, seen
    assert sum(seen.unanswered.values()) > 0, "no kill interrupted a call: the test did not test anything"
    print(f"\n{kind}: {ROUNDS} kills, {seen.flows} flows, {len(seen.consumed)} consumed, {len(seen.approved)}"
          f" approved, unanswered calls {dict(seen.unanswered)}, {len(stored.audit)} audit entries")


# --- PostgreSQL goes away ----------------------------------------------------------------------------------------


async def _until(condition: Any, what: str, seconds: float = 60) -> None:
    """Wait (bounded) until `condition()` holds; the stream runs meanwhile."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _outage(node: Node, tokens: dict[str, str], server: PrivateServer, home: Path) -> tuple[Seen, list[str]]:
    stream = Stream([node], tokens, store_can_fail=True)

    def auth(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[who]}"}

    async with http_client() as http:
        # Set aside before the outage: a request waiting for approval, and a grant not consumed yet.
        pending = (await http.post(f"{node.base}/v1/requests", json=transfer(-1, 5000), headers=auth("agent"))).json()
        allowed = (await http.post(f"{node.base}/v1/requests", json=transfer(-2, 100), headers=auth("agent"))).json()
        assert pending["outcome"] == "pending_approval" and allowed["outcome"] == "allowed"
        approve = (f"/v1/requests/{pending['request_id']}/approvals",
                   {"decision": "approve", "binding_code": pending["approval"]["binding_code"]})
        consume = ("/v1/grants/consume", {"grant": allowed["grant"], **transfer(-2, 100)})

        async def scenario() -> list[str]:
            await _until(lambda: stream.seen.flows >= 10, "the stream to run")
            await asyncio.to_thread(server.stop)  # pg_ctl -m immediate: every connection cut mid-stream
            refusals = await asyncio.gather(
                http.get(f"{node.base}/readyz"),
                http.post(f"{node.base}/v1/requests", json=transfer(-3, 100), headers=auth("agent")),
                http.post(f"{node.base}{approve[0]}", json=approve[1], headers=auth("approver")),
                http.post(f"{node.base}{consume[0]}", json=consume[1], headers=auth("executor")),
                http.get(f"{node.base}/v1/requests/{pending['request_id']}", headers=auth("agent")),
                http.get(f"{node.base}/v1/audit/verify", headers=auth("admin")),
            )
            for response in refusals:
                assert response.status_code == 503, (response.request.url, response.text)
                assert response.json()["error"]["code"] == "store.unavailable", response.text
            flows_down = stream.seen.flows
            await asyncio.to_thread(server.start)
            # Nobody restarts the node: it serves again as soon as the database answers, from the first call on.
            ready = await http.get(f"{node.base}/readyz")
            assert ready.status_code == 200, ready.text
            answers = [await http.post(f"{node.base}{approve[0]}", json=approve[1], headers=auth("approver")),
                       await http.post(f"{node.base}{consume[0]}", json=consume[1], headers=auth("executor"))]
            assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
            await _until(lambda: stream.seen.flows >= flows_down + 10, "the stream to run again")
            stream.stopping.set()
            return [f"{flows_down} flows before the database came back"]

        notes, _ = await asyncio.gather(scenario(), stream.run())
    assert not stream.unexpected
    await _check(node, tokens, home, server.url, stream.seen)
    return stream.seen, notes


def test_a_postgresql_that_goes_away_mid_stream_is_refused_with_503_and_the_node_serves_again_by_itself(
    tmp_path: Path,
) -> None:
    with private_server() as server:  # its own server: the machine's shared one is never stopped
        homes, tokens = prepare(tmp_path, 1, server.url)
        with running(homes, server.url, tmp_path / "logs") as nodes:
            seen, notes = asyncio.run(_outage(nodes[0], tokens, server, homes[0]))
        stored = snapshot(homes[0], server.url)

    stored.check()
    seen.check(stored, time.monotonic())
    assert seen.unanswered, "the outage refused no call of the stream"
    print(f"\noutage: {seen.flows} flows, refused or unanswered {dict(seen.unanswered)}; {'; '.join(notes)}")
