"""The witness over HTTP (real ASGI app, real SQLite state): each tlog-witness status, with its body and type."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interlock.audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from interlock.audit.cosignature import Cosigner, cosignatures
from interlock.audit.merkle import MemoryTree
from interlock.audit.witness import Witness
from interlock.server.witness import MAX_BODY_BYTES, create_witness_app
from interlock.store.witness_state import SqliteWitnessState

LOG = NoteSigner("interlock/http-log", Ed25519PrivateKey.generate())
COSIGNER = Cosigner("witness.example/w1", Ed25519PrivateKey.generate())
Post = Callable[..., httpx.Response]


def grown(size: int) -> MemoryTree:
    log = MemoryTree()
    for index in range(size):
        log.append(bytes([index]) * 32)
    return log


def add_checkpoint(old: int, log: MemoryTree, proof: list[bytes] | None = None, signer: NoteSigner = LOG) -> str:
    note = sign_checkpoint(Checkpoint(signer.name, log.size, log.root()), signer)
    return "".join([f"old {old}\n", *(base64.b64encode(h).decode() + "\n" for h in proof or []), "\n", note])


@pytest.fixture
def post(tmp_path: Path) -> Iterator[Post]:
    state = SqliteWitnessState(tmp_path / "witness.db")
    app = create_witness_app(Witness(COSIGNER, {LOG.name: [LOG.verifier]}, state, lambda: 1795900000))
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://witness")

        def send(body: str | bytes, path: str = "/add-checkpoint") -> httpx.Response:
            content = body.encode() if isinstance(body, str) else body
            return portal.call(lambda: client.post(path, content=content))

        yield send
        portal.call(client.aclose)
    state.close()


def test_a_consistent_checkpoint_gets_one_cosignature_line(post: Post) -> None:
    body = add_checkpoint(0, grown(3))
    answer = post(body)
    assert answer.status_code == 200
    assert answer.text.startswith("\u2014 witness.example/w1 ") and answer.text.count("\n") == 1
    assert cosignatures(body.split("\n\n", 1)[1] + answer.text, [COSIGNER.key]) == {COSIGNER.name: 1795900000}
    log = grown(8)
    assert post(add_checkpoint(3, log, log.consistency_proof(3, 8))).status_code == 200


def test_a_stale_old_size_is_409_with_the_size_held_as_text_x_tlog_size(post: Post) -> None:
    post(add_checkpoint(0, grown(5)))
    answer = post(add_checkpoint(0, grown(6)))
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "text/x.tlog.size"
    assert answer.text == "5\n"


@pytest.mark.parametrize(("body", "status"), [
    (add_checkpoint(0, grown(2), signer=NoteSigner("interlock/unknown", Ed25519PrivateKey.generate())), 404),
    (add_checkpoint(0, grown(2), signer=NoteSigner(LOG.name, Ed25519PrivateKey.generate())), 403),
    (add_checkpoint(0, grown(2), proof=[b"\x00" * 32]), 422),
    ("old 3\n\n" + add_checkpoint(0, grown(2)).split("\n\n", 1)[1], 400),
    ("old 0\nnot a request", 400),
    (b"old 0\n\n" + b"x" * MAX_BODY_BYTES, 413),
])
def test_each_refusal_has_the_status_the_spec_names(post: Post, body: str | bytes, status: int) -> None:
    answer = post(body)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/plain")
    assert "witness." in answer.text or status == 413


def test_the_witness_serves_nothing_else(post: Post) -> None:
    assert post("", path="/add-checkpoint/").status_code in (404, 307)
    assert post("", path="/docs").status_code in (404, 405)
