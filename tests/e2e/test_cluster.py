"""Three `interlock serve` processes on one PostgreSQL: 64 clients racing to consume every grant on different
nodes at once, and each grant succeeds exactly once, with one audit log that verifies and has no gaps."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from store.postgres_support import fresh_schema

from .nodes import Node, bearer, http_client, jti_of, prepare, running, snapshot, transfer

pytestmark = pytest.mark.slow

NODES = 3
CLIENTS = 64
GRANTS = int(os.environ.get("INTERLOCK_CLUSTER_GRANTS", "200"))  # the bench consumes 1,000 (bench/cluster.py)
RACERS = 3  # every grant is consumed by this many clients at once, each on a different node
SUBMITTERS = 16


async def issue(nodes: list[Node], tokens: dict[str, str], count: int) -> list[tuple[str, dict[str, Any]]]:
    """`count` allowed submits spread round-robin over the nodes: (grant, the action it authorizes) each."""
    numbers = iter(range(count))
    grants: list[tuple[str, dict[str, Any]]] = []

    async def submitter(client: httpx.AsyncClient) -> None:
        for number in numbers:
            action = transfer(number, 100 + number % 900)
            response = await client.post(f"{nodes[number % len(nodes)].base}/v1/requests", json=action)
            assert response.status_code == 201 and response.json()["outcome"] == "allowed", response.text
            grants.append((response.json()["grant"], action))

    async with http_client(tokens["agent"]) as client:
        await asyncio.gather(*(submitter(client) for _ in range(SUBMITTERS)))
    return grants


async def race(nodes: list[Node], tokens: dict[str, str],
               grants: list[tuple[str, dict[str, Any]]]) -> dict[str, list[tuple[str, int, str | None]]]:
    """CLIENTS clients take work from one shared list: every grant RACERS times, each on another node. The
    racers of a grant meet at a barrier, so their consumes are in flight at once; (node, status, code) each."""
    work: list[tuple[int, Node, asyncio.Barrier]] = []
    for number in range(len(grants)):
        barrier = asyncio.Barrier(RACERS)
        work += [(number, node, barrier) for node in random.sample(nodes, RACERS)]
    work.reverse()  # popped from the end: a grant's racers are taken one after the other
    outcomes: dict[str, list[tuple[str, int, str | None]]] = defaultdict(list)

    async def client() -> None:
        # One connection per client and node, as an executor behind a load balancer would keep.
        async with http_client(tokens["executor"]) as http:
            while work:
                number, node, barrier = work.pop()
                grant, action = grants[number]
                await barrier.wait()
                response = await http.post(f"{node.base}/v1/grants/consume", json={"grant": grant, **action})
                code = response.json()["error"]["code"] if response.status_code != 200 else None
                outcomes[jti_of(grant)].append((node.name, response.status_code, code))

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return outcomes


async def consume_on_another_node(nodes: list[Node], tokens: dict[str, str],
                                  grants: list[tuple[str, dict[str, Any]]]) -> dict[str, tuple[str, int]]:
    """Grant i, issued by node i (round-robin), consumed alone on node i + 1: jti -> (node, status)."""
    async with http_client(tokens["executor"]) as http:
        statuses = {}
        for number, (grant, action) in enumerate(grants):
            node = nodes[(number + 1) % len(nodes)]
            response = await http.post(f"{node.base}/v1/grants/consume", json={"grant": grant, **action})
            statuses[jti_of(grant)] = (node.name, response.status_code)
        return statuses


def test_three_nodes_on_one_postgresql_consume_every_grant_exactly_once(tmp_path: Path) -> None:
    with fresh_schema() as url:
        homes, tokens = prepare(tmp_path, NODES, url)
        with running(homes, url, tmp_path / "logs") as nodes:
            grants = asyncio.run(issue(nodes, tokens, GRANTS))
            outcomes = asyncio.run(race(nodes, tokens, grants))
            # Which racer wins is timing (one node often wins nearly all): that each node can win, alone.
            alone = asyncio.run(consume_on_another_node(nodes, tokens, asyncio.run(issue(nodes, tokens, NODES))))
            verifications = [httpx.get(f"{node.base}/v1/audit/verify", headers=bearer(tokens["admin"]),
                                       timeout=60) for node in nodes]
        stored = snapshot(homes[0], url)

    jtis = {jti_of(grant) for grant, _ in grants}
    assert len(jtis) == GRANTS
    assert set(outcomes) == jtis
    for jti, tries in outcomes.items():
        # Exactly one 200; every other racer is told the grant is used (not a 500, not a second success).
        assert sorted((status, code) for _, status, code in tries) == (
            [(200, None)] + [(409, "grant.already_used")] * (RACERS - 1)), (jti, tries)
        assert len({node for node, _, _ in tries}) == RACERS, "the racers of a grant were on different nodes"
    assert sorted(alone.values()) == [(node.name, 200) for node in nodes], alone

    for response in verifications:  # every node verifies the one shared log
        assert response.status_code == 200, response.text
        assert response.json()["ok"] is True and response.json()["problems"] == [], response.json()
        assert response.json()["entries"] == len(stored.audit)
    stored.check()  # indexes 0..n-1, no grant consumed twice, consumed_at and grant.consumed agree
    assert stored.jtis("grant.consumed") == Counter(dict.fromkeys(jtis | set(alone), 1))
    assert stored.kinds()["grant.consumed"] == GRANTS + NODES
    # Every losing racer's refusal is on the record too.
    assert stored.jtis("grant.refused") == Counter(dict.fromkeys(jtis, RACERS - 1))
    assert {jti for jti, at in stored.consumed_at.items() if at is not None} == jtis | set(alone)

