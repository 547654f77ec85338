"""INVARIANT 3 — once: a grant is consumed at most once, across threads and processes."""

from __future__ import annotations

import multiprocessing
import queue
import shutil
import threading
from collections import Counter
from pathlib import Path

from conftest import SEED, FixedClock, spec_of
from interlock.core.errors import InterlockError
from interlock.gate import Gate
from interlock.home import Home

from .consume_race import race
from .grant_flow import approved_ceo_payment, audit_log

THREADS = 16
PROCESSES = 4
GRANTS_RACED_BY_PROCESSES = 3


def test_sixteen_threads_on_one_gate_consume_a_grant_once(gate: Gate) -> None:
    document, state = approved_ceo_payment(gate)
    barrier = threading.Barrier(THREADS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def contender() -> None:
        barrier.wait(timeout=30)
        try:
            gate.consume(state.grant, "payments-service", spec_of(document))
            outcome = "consumed"
        except InterlockError as refusal:
            outcome = refusal.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=contender) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert Counter(outcomes) == {"consumed": 1, "grant.already_used": THREADS - 1}
    log = audit_log(gate)
    assert [e["kind"] for e in log].count("grant.consumed") == 1
    refused = [e["data"]["code"] for e in log if e["kind"] == "grant.refused"]
    assert refused == ["grant.already_used"] * (THREADS - 1)
    assert gate.status(state.request_id).consumed
    assert gate.verify_audit().ok


def test_four_processes_on_one_home_consume_each_grant_once(tmp_path: Path, clock: FixedClock) -> None:
    home = Home(tmp_path / "home", tmp_path / "policy.yaml")
    shutil.copyfile(SEED / "policy.yaml", home.policy_path)
    gate = home.open_gate()
    gate.clock = clock
    grants = []
    for _ in range(GRANTS_RACED_BY_PROCESSES):
        document, state = approved_ceo_payment(gate, amount=48000)
        grants.append(state.grant)
    action = spec_of(document)  # every grant is for the same action: only the jti tells them apart
    gate.store.close()

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=race, args=(str(home.path), str(home.policy_path), clock.now.isoformat(), grants,
                                           action, barrier, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes: dict[int, list[str]] = {n: [] for n in range(GRANTS_RACED_BY_PROCESSES)}
    try:
        for _ in range(PROCESSES * GRANTS_RACED_BY_PROCESSES):
            number, outcome = results.get(timeout=60)
            outcomes[number].append(outcome)
    except queue.Empty:
        raise AssertionError(f"a racing process died; results so far: {outcomes}") from None
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in processes] == [0] * PROCESSES

    for number in outcomes:
        assert Counter(outcomes[number]) == {"consumed": 1, "grant.already_used": PROCESSES - 1}, number
    reopened = home.open_gate()
    try:
        kinds = [e["kind"] for e in audit_log(reopened)]
        assert kinds.count("grant.consumed") == GRANTS_RACED_BY_PROCESSES
        assert kinds.count("grant.refused") == GRANTS_RACED_BY_PROCESSES * (PROCESSES - 1)
        assert reopened.verify_audit().ok
    finally:
        reopened.store.close()
