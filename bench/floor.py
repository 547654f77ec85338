"""(b) The floor under (a2): the bare primitives the allow path cannot avoid, each timed alone.

One CEL evaluation (cel-expr-python, same expression and data), one RFC 8785 canonicalization +
SHA-256 of `{action, resource, params}`, one Ed25519 signature over a grant-sized payload, and one
single-row SQLite commit in WAL with synchronous=FULL in the same directory as the gate's store.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import rfc8785
from cel_expr_python import cel
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import EXPRESSION, REQUEST, REQUEST_BYTES, require
from bench.interlock_paths import open_gate
from bench.measure import Subject
from interlock.ids import new_id


def cel_subject() -> Subject:
    """Bind the request's data and evaluate the compiled expression: what a condition costs at minimum."""
    dyn_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
    env = cel.NewEnv(variables={"principal": dyn_map, "params": dyn_map})
    program = env.compile(EXPRESSION)
    data = {"principal": REQUEST["principal"], "params": REQUEST["params"]}
    require(program.eval(env.Activation(data)).value() is True, "b.cel: expression is not true for the request")
    return Subject("b.cel", "CEL eval (cel-expr-python, bind + eval)", lambda: program.eval(env.Activation(data)))


def canonical_digest_subject() -> Subject:
    """RFC 8785 canonical JSON of `{action, resource, params}` and its SHA-256."""
    body = {"action": REQUEST["action"], "resource": REQUEST["resource"], "params": REQUEST["params"]}
    return Subject("b.jcs", "RFC 8785 + SHA-256 (rfc8785.dumps)", lambda: hashlib.sha256(rfc8785.dumps(body)).digest())


def signature_subject(grant_token: str) -> Subject:
    """One Ed25519 signature over a payload as long as a real grant's JWS signing input."""
    payload = grant_token.rsplit(".", 1)[0].encode()
    key = Ed25519PrivateKey.generate()
    return Subject("b.ed25519", f"Ed25519 sign ({len(payload)} B payload)", lambda: key.sign(payload))


def sqlite_commit_subject(directory: Path) -> Subject:
    """BEGIN IMMEDIATE; INSERT one row; COMMIT — WAL, synchronous=FULL, same filesystem as the store."""
    db = sqlite3.connect(directory / "floor.db", isolation_level=None)
    require(db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal", "b.sqlite: WAL not enabled")
    db.execute("PRAGMA synchronous=FULL")
    require(db.execute("PRAGMA synchronous").fetchone()[0] == 2, "b.sqlite: synchronous is not FULL")
    db.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")

    def commit() -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO rows (body) VALUES (?)", (REQUEST_BYTES,))
        db.execute("COMMIT")

    return Subject("b.sqlite", "SQLite 1-row commit (WAL, synchronous=FULL)", commit)


FLOOR_KEYS = ("b.cel", "b.jcs", "b.ed25519", "b.sqlite")


def allowed_submit_rows(directory: Path) -> Callable[[], None]:
    """A commit of exactly the rows one allowed submit writes, with fresh ids, into a store of the real schema."""
    gate = open_gate(directory)
    gate.submit(REQUEST_BYTES)
    gate.store.close()
    db = sqlite3.connect(directory / "interlock.db", isolation_level=None)
    db.execute("PRAGMA synchronous=FULL")
    request = db.execute("SELECT * FROM requests").fetchone()
    grant = db.execute("SELECT * FROM grants").fetchone()
    leaf = db.execute("SELECT leaf, leaf_hash FROM audit").fetchone()
    insert_request = f"INSERT INTO requests VALUES ({', '.join('?' * len(request))})"
    insert_grant = f"INSERT INTO grants VALUES ({', '.join('?' * len(grant))})"

    def commit() -> None:
        request_id, jti = new_id("req"), new_id("grt")  # as the gate's
        db.execute("BEGIN IMMEDIATE")
        db.execute(insert_request, (request_id, *request[1:]))
        db.execute(insert_grant, (jti, request_id, *grant[2:]))
        (index,) = db.execute("SELECT max(idx) + 1 FROM audit").fetchone()
        db.execute("INSERT INTO audit (idx, leaf, leaf_hash) VALUES (?, ?, ?)", (index, *leaf))
        db.execute("COMMIT")

    return commit


def as_run_subject(directory: Path, grant_token: str) -> Subject:
    """The floor as a2 runs it: CEL, RFC 8785 + SHA-256 and Ed25519 once each, then the commit of the rows an
    allowed submit must write (request, grant, audit entry) — in sequence, with no Interlock code."""
    cel, jcs, ed25519 = cel_subject().fn, canonical_digest_subject().fn, signature_subject(grant_token).fn
    directory.mkdir()
    rows = allowed_submit_rows(directory)

    def in_sequence() -> None:
        cel(), jcs(), ed25519(), rows()

    return Subject("b.as_run", "floor as a2 runs it: the 4 in a row, a2's rows", in_sequence)
