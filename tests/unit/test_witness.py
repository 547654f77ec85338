"""The witness (C2SP tlog-witness add-checkpoint): it cosigns a log's checkpoint only when it extends the last
one it cosigned for that log, on its real SQLite state; every refusal changes nothing."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interlock.audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from interlock.audit.cosignature import Cosigner, cosignatures
from interlock.audit.merkle import MemoryTree
from interlock.audit.witness import Witness, Witnessed, parse_add_checkpoint
from interlock.core.errors import AuditError
from interlock.store.witness_state import SqliteWitnessState

LOG = NoteSigner("interlock/test-log", Ed25519PrivateKey.generate())
COSIGNER = Cosigner("witness.example/w1", Ed25519PrivateKey.generate())
NOW = 1795900000


def tree(size: int, salt: str = "") -> MemoryTree:
    built = MemoryTree()
    for index in range(size):
        built.append(hashlib.sha256(f"{salt}{index}".encode()).digest())
    return built


def body(old: int, proof: list[bytes], log: MemoryTree, signer: NoteSigner = LOG) -> bytes:
    """An add-checkpoint request for the checkpoint of `log`, signed by `signer` under its name as the origin."""
    note = sign_checkpoint(Checkpoint(signer.name, log.size, log.root()), signer)
    lines = [f"old {old}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n", note]
    return "".join(lines).encode()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SqliteWitnessState]:
    opened = SqliteWitnessState(tmp_path / "witness.db")
    yield opened
    opened.close()


@pytest.fixture
def witness(state: SqliteWitnessState) -> Witness:
    return Witness(COSIGNER, {LOG.name: [LOG.verifier]}, state, lambda: NOW)


def refusal(witness: Witness, request: bytes) -> AuditError:
    with pytest.raises(AuditError) as refused:
        witness.add_checkpoint(request)
    return refused.value


def test_a_first_checkpoint_is_cosigned_and_its_size_and_root_recorded(witness: Witness,
                                                                        state: SqliteWitnessState) -> None:
    log = tree(3)
    request = body(0, [], log)
    line = witness.add_checkpoint(request)
    note = parse_add_checkpoint(request).checkpoint
    assert cosignatures(note + line, [COSIGNER.key]) == {COSIGNER.name: NOW}
    assert state.latest(LOG.name) == Witnessed(3, log.root())


def test_a_grown_log_is_cosigned_with_the_proof_from_the_size_it_held(witness: Witness,
                                                                      state: SqliteWitnessState) -> None:
    log = tree(7)
    witness.add_checkpoint(body(0, [], tree(3)))
    witness.add_checkpoint(body(3, log.consistency_proof(3, 7), log))
    witness.add_checkpoint(body(7, [], log))  # the same checkpoint again: cosigned again
    assert state.latest(LOG.name) == Witnessed(7, log.root())


def test_what_it_cosigned_is_kept_across_restarts(tmp_path: Path) -> None:
    first = SqliteWitnessState(tmp_path / "w.db")
    Witness(COSIGNER, {LOG.name: [LOG.verifier]}, first, lambda: NOW).add_checkpoint(body(0, [], tree(5)))
    first.close()
    again = SqliteWitnessState(tmp_path / "w.db")
    try:
        restarted = Witness(COSIGNER, {LOG.name: [LOG.verifier]}, again, lambda: NOW)
        assert refusal(restarted, body(0, [], tree(6))).detail == {"size": 5}
    finally:
        again.close()


def test_a_rolled_back_log_is_refused_with_the_size_the_witness_holds(witness: Witness,
                                                                       state: SqliteWitnessState) -> None:
    witness.add_checkpoint(body(0, [], tree(5)))
    # a backup of 3 entries restored: it cannot claim the witness holds 5 and prove 5 -> 3
    refused = refusal(witness, body(0, [], tree(3)))
    assert (refused.code, refused.detail) == ("witness.conflict", {"size": 5})
    assert refusal(witness, body(5, [], tree(3))).code == "witness.malformed"  # old above the checkpoint's size
    assert state.latest(LOG.name) == Witnessed(5, tree(5).root())


def test_a_second_history_of_the_same_size_is_a_conflict(witness: Witness, state: SqliteWitnessState) -> None:
    witness.add_checkpoint(body(0, [], tree(4)))
    forked = tree(4, salt="other")
    refused = refusal(witness, body(4, [], forked))
    assert (refused.code, refused.detail) == ("witness.conflict", {"size": 4})
    assert state.latest(LOG.name) == Witnessed(4, tree(4).root())


def test_a_history_that_does_not_extend_the_cosigned_one_is_unprocessable(witness: Witness,
                                                                          state: SqliteWitnessState) -> None:
    witness.add_checkpoint(body(0, [], tree(3)))
    forked = tree(6, salt="other")  # rewrote the first three entries, then grew
    assert refusal(witness, body(3, forked.consistency_proof(3, 6), forked)).code == "witness.inconsistent"
    honest = tree(6)
    assert refusal(witness, body(3, honest.consistency_proof(2, 6), honest)).code == "witness.inconsistent"
    assert refusal(witness, body(3, [], honest)).code == "witness.inconsistent"
    assert state.latest(LOG.name) == Witnessed(3, tree(3).root())


def test_a_log_it_does_not_witness_is_not_found_and_a_forged_signature_is_forbidden(witness: Witness) -> None:
    other = NoteSigner("interlock/other-log", Ed25519PrivateKey.generate())
    assert refusal(witness, body(0, [], tree(2), signer=other)).code == "witness.unknown_log"
    impostor = NoteSigner(LOG.name, Ed25519PrivateKey.generate())  # the log's name, not its key
    assert refusal(witness, body(0, [], tree(2), signer=impostor)).code == "witness.bad_signature"


@pytest.mark.parametrize("request_body", [
    b"old 0\n",
    b"old 01\n\n",
    b"old -1\n\n",
    b"old  1\n\n",
    b"new 0\n\n",
    b"old 9223372036854775808\n\n",
    b"\xff\xfe",
    b"old 1\nnot base64!\n\n",
    b"old 1\n" + base64.b64encode(b"short") + b"\n\n",
    b"old 0\n" + (base64.b64encode(b"\x00" * 32) + b"\n") * 64 + b"\n",
    b"old 0\n\nnot a checkpoint\n",
])
def test_a_malformed_request_is_a_bad_request(witness: Witness, state: SqliteWitnessState,
                                              request_body: bytes) -> None:
    assert refusal(witness, request_body).code == "witness.malformed"
    assert state.latest(LOG.name) is None


def test_racing_requests_from_one_size_advance_the_witness_once(witness: Witness, state: SqliteWitnessState) -> None:
    """The spec's race: checks of the old size and stores of the new one interleaved would roll the witness back."""
    witness.add_checkpoint(body(0, [], tree(3)))
    honest = tree(12)
    requests = {size: body(3, honest.consistency_proof(3, size), tree(size)) for size in range(4, 12)}
    start = threading.Barrier(len(requests))
    outcomes: dict[int, str] = {}

    def submit(size: int) -> None:
        start.wait()
        try:
            witness.add_checkpoint(requests[size])
            outcomes[size] = "cosigned"
        except AuditError as error:
            outcomes[size] = error.code

    threads = [threading.Thread(target=submit, args=(size,)) for size in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (winner,) = [size for size, outcome in outcomes.items() if outcome == "cosigned"]
    assert sorted(outcomes.values()) == ["cosigned"] + ["witness.conflict"] * 7
    assert state.latest(LOG.name) == Witnessed(winner, tree(winner).root())
