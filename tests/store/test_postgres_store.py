"""What only the PostgreSQL store promises: several nodes on one database, wake-ups across them, migrations that
nodes starting together do not collide on, and `store.unavailable` whenever the server does not answer."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from conftest import FixedClock
from interlock.audit.log import verify
from interlock.core.errors import StoreError
from interlock.keys import KeyRing
from interlock.ledger import Ledger
from interlock.store.base import RequestChange, Store
from interlock.store.postgres import PostgresStore, apply_migrations, migrations
from interlock.store.postgres_notify import PostgresNotifier

from .postgres_support import fresh_schema, private_server
from .races import append_race, consume_race, quorum_race, run_together, velocity_race
from .test_store_contract import T0, _consumed_event, approval, audit_kinds, create, event

THREADS = 12


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema() as schema_url:
        yield schema_url


@pytest.fixture
def nodes(url: str) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database: what two gate nodes behind a load balancer have."""
    a, b = PostgresStore(url, max_size=4), PostgresStore(url, max_size=4)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


# --- several nodes ------------------------------------------------------------------------------


def test_two_nodes_consume_one_grant_once(nodes: tuple[PostgresStore, PostgresStore]) -> None:
    outcomes = consume_race(nodes, 16)

    assert outcomes == {"consumed": 1, "grant.already_used": 15}
    assert audit_kinds(nodes[1]).count("grant.consumed") == 1


def test_two_nodes_appending_at_once_write_one_log_without_gaps_or_duplicates(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    leaves = append_race(nodes, THREADS, 5)

    assert [leaf["index"] for leaf in leaves] == list(range(THREADS * 5 * 2))
    assert {leaf["data"]["writer"] % 2 for leaf in leaves} == {0, 1}  # both nodes wrote


def test_two_nodes_cannot_both_pass_a_velocity_limit(nodes: tuple[PostgresStore, PostgresStore]) -> None:
    assert velocity_race(nodes, THREADS, limit=3) == {"allowed": 3, "denied": THREADS - 3}


def test_approvals_on_two_nodes_each_see_the_ones_before(nodes: tuple[PostgresStore, PostgresStore]) -> None:
    outcomes, record = quorum_race(nodes, THREADS, quorum=3)

    assert outcomes == {"issued": 1, "voted": THREADS - 1}
    assert len(record.approvals) == THREADS and record.status == "approved"


def test_two_nodes_signing_checkpoints_while_both_append_keep_one_consistent_signed_log(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    keys = KeyRing.generate()
    ledgers = [Ledger(node, keys, FixedClock()) for node in nodes]

    def work(node: Store, n: int) -> None:
        for batch in range(6):
            if n % 3 == 0:
                ledgers[n % 2].checkpoint()
            else:
                node.append_audit([event("entry", None, writer=n, batch=batch)])

    assert set(run_together(nodes, THREADS, work)) == {None}  # nothing refused
    ledgers[1].checkpoint()

    signed = nodes[0].checkpoints()
    assert [c.size for c in signed] == sorted({c.size for c in signed})  # each size signed once, growing
    assert signed[-1].size == len(list(nodes[1].audit_entries())) == (THREADS - THREADS // 3) * 6
    verification = ledgers[0].verify()
    assert verification.ok, verification.problems


# --- wake-ups across nodes ------------------------------------------------------------------------


def _approve(store: PostgresStore, request_id: str, approver: str) -> None:
    store.update_request(request_id, lambda r: RequestChange([event("approval.approved", request_id)],
                                                             approval=approval(request_id, approver)))


def test_a_change_on_node_a_wakes_a_waiter_on_node_b(url: str, nodes: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = nodes
    create(a, "req-1", status="pending_approval")
    notifier = PostgresNotifier(url)  # node B's

    async def wait_on_b() -> int:
        with notifier.subscribe("req-1") as changes:
            assert await asyncio.to_thread(notifier.listening.wait, 10)
            changes.clear()  # the wake-up every (re)connect gives
            await asyncio.to_thread(_approve, a, "req-1", "user:alice")
            assert await changes.wait(10)
            return len((await asyncio.to_thread(b.get_request, "req-1")).approvals)

    try:
        assert asyncio.run(wait_on_b()) == 1
    finally:
        notifier.close()


def test_the_listener_reconnects_and_wakes_its_waiters_when_its_connection_is_lost(
    url: str, nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, _ = nodes
    create(a, "req-1", status="pending_approval")
    notifier = PostgresNotifier(url)

    async def scenario() -> None:
        with notifier.subscribe("req-1") as changes:
            assert await asyncio.to_thread(notifier.listening.wait, 10)
            changes.clear()
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (notifier.backend_pid,))
            # Changes made while it was away may have gone unheard: the waiter is woken to read again.
            assert await changes.wait(10)
            assert await asyncio.to_thread(notifier.listening.wait, 10)
            changes.clear()
            await asyncio.to_thread(_approve, a, "req-1", "user:bob")
            assert await changes.wait(10)

    try:
        asyncio.run(scenario())
    finally:
        notifier.close()


# --- migrations -----------------------------------------------------------------------------------


def _migrate_after(barrier: multiprocessing.synchronize.Barrier, url: str,
                   results: multiprocessing.Queue[list[int] | str]) -> None:
    barrier.wait(timeout=60)
    try:
        results.put(apply_migrations(url))
    except StoreError as error:
        results.put(error.code + ": " + error.message)


@pytest.mark.slow
def test_two_processes_migrating_at_once_apply_each_migration_once(url: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_migrate_after, args=(barrier, url, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)

    assert all(isinstance(outcome, list) for outcome in outcomes), outcomes
    every = [version for version, _, _ in migrations()]
    assert sorted(outcomes[0] + outcomes[1]) == every  # one process applied them all, the other none
    with psycopg.connect(url) as conn:
        assert [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")] == every
    assert apply_migrations(url) == []


def test_a_store_opened_again_applies_nothing_and_keeps_its_rows(url: str) -> None:
    first = PostgresStore(url)
    create(first, "req-1", with_grant="grt-1")
    second = PostgresStore(url)
    try:
        assert (first.applied, second.applied) == ([v for v, _, _ in migrations()], [])
        assert second.get_request("req-1").grant.jti == "grt-1"
        assert first.log_origin() == second.log_origin()
    finally:
        first.close()
        second.close()


# --- fail closed ----------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_server_that_does_not_answer_is_store_unavailable(url: str) -> None:
    nowhere = make_conninfo(url, port=str(_closed_port()))

    with pytest.raises(StoreError) as opening:
        PostgresStore(nowhere)
    assert opening.value.code == "store.unavailable"

    store = PostgresStore(nowhere, migrate=False, timeout=0.5)
    try:
        for operation in (lambda: store.get_request("req-1"), store.ping, lambda: list(store.audit_entries()),
                          lambda: create(store, "req-1")):
            with pytest.raises(StoreError) as refused:
                operation()
            assert refused.value.code == "store.unavailable"
    finally:
        store.close()


def test_a_connection_the_server_dropped_is_replaced_without_refusing_anything(url: str) -> None:
    named = make_conninfo(url, application_name="interlock-drop-test")
    store = PostgresStore(named, max_size=2)
    try:
        create(store, "req-1", status="pending_approval")
        with psycopg.connect(url, autocommit=True) as admin:
            dropped = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                    " WHERE application_name = 'interlock-drop-test'").fetchone()
        assert dropped is not None and dropped[0] >= 1

        _approve(store, "req-1", "user:alice")
        assert [a.approver_id for a in store.get_request("req-1").approvals] == ["user:alice"]
    finally:
        store.close()


def test_a_database_without_interlock_tables_is_not_ready(url: str) -> None:
    store = PostgresStore(url, migrate=False)
    try:
        with pytest.raises(StoreError) as refused:
            store.ping()
        assert refused.value.code == "store.unavailable"
    finally:
        store.close()


@pytest.mark.slow
def test_a_node_refuses_while_its_database_is_down_and_serves_again_by_itself_when_it_is_back() -> None:
    with private_server() as server:  # never stop the shared server: other tests and people use it
        store = PostgresStore(server.url, timeout=0.5)
        notifier = PostgresNotifier(server.url)
        create(store, "req-1", status="pending_approval")
        create(store, "req-2", with_grant="grt-2")
        down = [lambda: store.get_request("req-1"), store.ping, lambda: _approve(store, "req-1", "user:alice"),
                lambda: store.consume_grant("grt-2", _consumed_event, T0),
                lambda: store.append_audit([event("x", None)]), lambda: create(store, "req-3")]

        async def scenario() -> None:
            with notifier.subscribe("req-1") as changes:
                assert await asyncio.to_thread(notifier.listening.wait, 10)
                changes.clear()
                await asyncio.to_thread(server.stop)
                for operation in down:
                    with pytest.raises(StoreError) as refused:
                        await asyncio.to_thread(operation)
                    assert refused.value.code == "store.unavailable"
                await asyncio.to_thread(server.start)
                # The first operation after the restart succeeds: no refusal once the database answers again.
                await asyncio.to_thread(_approve, store, "req-1", "user:bob")
                # The listener is back too, and has woken its waiter (to read again) or relayed bob's approval.
                assert await changes.wait(15)

        try:
            asyncio.run(scenario())
            assert [a.approver_id for a in store.get_request("req-1").approvals] == ["user:bob"]
            assert store.get_request("req-2").grant.consumed_at is None
            assert store.consume_grant("grt-2", _consumed_event, T0).consumed_at == T0
            assert verify(list(store.audit_entries())).ok
        finally:
            notifier.close()
            store.close()
