"""The embedded SQLite store: WAL, `BEGIN IMMEDIATE` writes, `synchronous=FULL` so a commit survives power loss."""

from __future__ import annotations

import dataclasses
import datetime
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from interlock.audit.log import AuditEntry, StoredEntry, seal
from interlock.audit.merkle import BatchReader, Node, NodeReader
from interlock.core.action import ActionRequest
from interlock.core.conditions import History
from interlock.core.errors import ApprovalError, AuthError, GrantError, StoreError
from interlock.store import tree
from interlock.store.base import (
    AuditEvent,
    BreakGlassReview,
    CheckpointRecord,
    CredentialRecord,
    GrantRecord,
    LoadRequest,
    NewRequest,
    RequestChange,
    RequestRecord,
    ReviewChange,
    Role,
    SessionRecord,
    SignCheckpoint,
)
from interlock.store.rows import (
    NOT_COUNTED,
    approval_from_row,
    changed_checkpoint,
    check_param,
    checkpoint_from_row,
    credential_from_row,
    from_micros,
    grant_from_row,
    grant_row,
    optional_micros,
    rfc3339,
    signoff_from_row,
    to_micros,
)
from interlock.store.sqlite_wal import BACKSTOP_PAGES, WalCheckpointer
from interlock.store.sqlite_writer import GroupCommitWriter

T = TypeVar("T")
# Leaves whose nodes are completed at a time; a longer backlog takes one write transaction each. Every other
# writer waits for one such transaction: with 8,192, a checkpoint over the 15,000 leaves of 10 s at 1,500
# submits/s held the write lock 40-95 ms at a time (the server's p99 stalls); with 1,024, 8 ms at most, and
# the whole checkpoint took no longer (116 against 159 ms; 200,000 leaves: 1.24 against 1.46 s).
_NODE_CHUNK = 1 << 10


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("interlock.store") / "migrations" / "sqlite"
    scripts = [item for item in folder.iterdir() if item.name.endswith(".sql")]
    return sorted((int(item.name.split("_", 1)[0]), item.read_text()) for item in scripts)


class _SqliteHistory:
    """Velocity counters read inside the caller's write transaction, so they cannot race."""

    def __init__(self, db: sqlite3.Connection, principal_id: str, now: datetime.datetime, exclude: str | None) -> None:
        self._db, self._principal, self._now, self._exclude = db, principal_id, to_micros(now), exclude or ""

    def count(self, action: str, window_seconds: int) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM requests WHERE principal_id = ? AND action = ? AND created_at > ?"
            " AND id != ? AND status NOT IN (?, ?)",
            (self._principal, action, self._now - window_seconds * 1_000_000, self._exclude, *NOT_COUNTED),
        ).fetchone()
        return int(row[0])

    def sum(self, action: str, param: str, window_seconds: int) -> float:
        check_param(param)
        row = self._db.execute(
            "SELECT total(CAST(json_extract(request_json, ?) AS REAL)) FROM requests WHERE principal_id = ?"
            " AND action = ? AND created_at > ? AND id != ? AND status NOT IN (?, ?)",
            (f"$.params.{param}", self._principal, action, self._now - window_seconds * 1_000_000, self._exclude,
             *NOT_COUNTED),
        ).fetchone()
        return float(row[0])


class SqliteStore:
    """A Store on one SQLite file; safe for many threads and processes on one machine."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 10_000, max_idle: int = 8) -> None:
        self.path = str(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._max_idle = max_idle
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._wal_checkpointer: WalCheckpointer | None = None
        self._writer = GroupCommitWriter(self.path + ".lock", self._connection, busy_timeout_ms / 1000)
        self._writer.run(self._migrate)

    # --- connections and transactions -------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            # Pooled: a connection serves one operation at a time, on whichever thread runs it.
            db = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # A consumed grant or an accepted approval must survive power loss: fsync every commit.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            if self._wal_checkpointer is not None:
                db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES:d}")
        except sqlite3.Error as exc:
            raise StoreError("store.unavailable", f"cannot open SQLite store: {exc}") from None
        return db

    def start_housekeeping(self) -> None:
        """Checkpoint the WAL from a thread of its own from now on, not in commits."""
        with self._lock:
            if self._wal_checkpointer is not None:
                return
            self._wal_checkpointer = WalCheckpointer(self.path)
            idle, self._idle = self._idle, []  # opened with SQLite's own threshold: open them again
        for db in idle:
            db.close()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._idle.pop() if self._idle else None
        db = db or self._open()
        try:
            yield db
        finally:
            with self._lock:
                keep = len(self._idle) < self._max_idle
                if keep:
                    self._idle.append(db)
            if not keep:
                db.close()

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A pooled connection inside one read transaction: every read in it sees the same committed state."""
        try:
            with self._connection() as db:
                db.execute("BEGIN")
                try:
                    yield db
                finally:
                    db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise StoreError("store.unavailable", f"SQLite store failed: {exc}") from None

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        try:
            with self._connection() as db:
                return db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError("store.unavailable", f"SQLite store failed: {exc}") from None

    def _migrate(self, db: sqlite3.Connection) -> None:
        current = db.execute("PRAGMA user_version").fetchone()[0]
        for version, script in _migrations():
            if version > current:
                for statement in script.split(";\n"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version:d}")

    def close(self) -> None:
        """Close idle connections; one in use by an operation closes when that operation ends."""
        with self._lock:
            idle, self._idle, self._max_idle = self._idle, [], 0
        for db in idle:
            db.close()
        self._writer.close()
        if self._wal_checkpointer is not None:
            self._wal_checkpointer.close()

    # --- operations --------------------------------------------------------------------------

    def create_request(
        self,
        request_id: str,
        request: ActionRequest,
        digest: str,
        created_at: datetime.datetime,
        decide: Callable[[History], NewRequest],
    ) -> NewRequest:
        return self._writer.run(self._create_request(request_id, request, digest, created_at, decide))

    async def create_request_async(
        self,
        request_id: str,
        request: ActionRequest,
        digest: str,
        created_at: datetime.datetime,
        decide: Callable[[History], NewRequest],
    ) -> NewRequest:
        return await self._writer.run_async(self._create_request(request_id, request, digest, created_at, decide))

    def _create_request(
        self,
        request_id: str,
        request: ActionRequest,
        digest: str,
        created_at: datetime.datetime,
        decide: Callable[[History], NewRequest],
    ) -> Callable[[sqlite3.Connection], NewRequest]:
        def work(db: sqlite3.Connection) -> NewRequest:
            new = decide(_SqliteHistory(db, request.principal.id, created_at, None))
            db.execute(
                "INSERT INTO requests (id, principal_id, action, digest, request_json, status,"
                " decision_json, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request_id, request.principal.id, request.action, digest,
                    request.model_dump_json(), new.status, json.dumps(new.decision), to_micros(created_at),
                    optional_micros(new.expires_at),
                ),
            )
            if new.grant:
                self._insert_grant(db, new.grant)
            self._append(db, new.events)
            return new

        return work

    def update_request(self, request_id: str, change: Callable[[RequestRecord], RequestChange]) -> RequestChange:
        def work(db: sqlite3.Connection) -> RequestChange:
            record = self._load(db, request_id)
            result = change(record)
            if result.status:
                db.execute("UPDATE requests SET status = ? WHERE id = ?", (result.status, request_id))
            if result.approval:
                a = result.approval
                try:
                    db.execute(
                        "INSERT INTO approvals (id, request_id, approver_id, channel, verdict, comment, at, auth,"
                        " break_glass) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (a.id, a.request_id, a.approver_id, a.channel, a.verdict, a.comment, to_micros(a.at),
                         a.auth, int(a.break_glass)),
                    )
                except sqlite3.IntegrityError:
                    raise ApprovalError("approval.duplicate", f"`{a.approver_id}` has already decided") from None
            if result.grant:
                self._insert_grant(db, result.grant)
            if result.review:
                r = result.review
                db.execute(
                    "INSERT INTO break_glass_reviews (request_id, entry_id, used_by, justification, opened_at, due_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (r.request_id, r.entry_id, r.used_by, r.justification, to_micros(r.opened_at),
                     to_micros(r.due_at)),
                )
            self._append(db, result.events)
            return result

        return self._writer.run(work)

    def consume_grant(
        self,
        jti: str,
        check: Callable[[GrantRecord, LoadRequest], list[AuditEvent]],
        consumed_at: datetime.datetime,
    ) -> GrantRecord:
        return self._writer.run(self._consume_grant(jti, check, consumed_at))

    async def consume_grant_async(
        self,
        jti: str,
        check: Callable[[GrantRecord, LoadRequest], list[AuditEvent]],
        consumed_at: datetime.datetime,
    ) -> GrantRecord:
        return await self._writer.run_async(self._consume_grant(jti, check, consumed_at))

    def _consume_grant(
        self,
        jti: str,
        check: Callable[[GrantRecord, LoadRequest], list[AuditEvent]],
        consumed_at: datetime.datetime,
    ) -> Callable[[sqlite3.Connection], GrantRecord]:
        def work(db: sqlite3.Connection) -> GrantRecord:
            grant = self._grant(db, jti)
            if grant is None:
                raise GrantError("grant.not_issued", "no grant with this id was issued by this gate")
            if grant.consumed_at is not None:
                raise GrantError("grant.already_used", "grant has already been used")

            def load() -> tuple[RequestRecord, History]:
                record = self._load(db, grant.request_id)
                return record, _SqliteHistory(db, record.request.principal.id, consumed_at, record.id)

            events = check(grant, load)
            # INVARIANT 3: one conditional update; the row count says who won.
            cursor = db.execute(
                "UPDATE grants SET consumed_at = ? WHERE jti = ? AND consumed_at IS NULL",
                (to_micros(consumed_at), jti),
            )
            if cursor.rowcount != 1:
                raise GrantError("grant.already_used", "grant has already been used")
            self._append(db, events)
            return dataclasses.replace(grant, consumed_at=consumed_at)

        return work

    def record_result(
        self, jti: str, result: str, detail: str, event: AuditEvent, executor: str | None = None
    ) -> GrantRecord:
        def work(db: sqlite3.Connection) -> GrantRecord:
            cursor = db.execute(
                "UPDATE grants SET result = ?, result_detail = ? WHERE jti = ? AND consumed_at IS NOT NULL"
                " AND result IS NULL AND (? IS NULL OR executor = ?)",
                (result, detail, jti, executor, executor),
            )
            if cursor.rowcount != 1:
                grant = self._grant(db, jti)
                if grant is None:
                    raise GrantError("grant.not_issued", "no grant with this id was issued by this gate")
                if executor is not None and grant.executor != executor:
                    raise GrantError("grant.wrong_executor", "only the grant's executor may report its result")
                if grant.consumed_at is None:
                    raise GrantError("grant.not_consumed", "a result can only follow a consumed grant")
                raise GrantError("grant.result_recorded", "the result of this grant is already recorded")
            self._append(db, [event])
            return self._grant(db, jti)  # type: ignore[return-value]

        return self._writer.run(work)

    def append_audit(self, events: list[AuditEvent]) -> None:
        def work(db: sqlite3.Connection) -> None:
            self._append(db, events)

        return self._writer.run(work)

    def get_request(self, request_id: str) -> RequestRecord:
        try:
            with self._connection() as db:
                return self._load(db, request_id)
        except sqlite3.Error as exc:
            raise StoreError("store.unavailable", f"SQLite store failed: {exc}") from None

    def pending_requests(self, now: datetime.datetime) -> list[RequestRecord]:
        with self._snapshot() as db:  # no request half-updated between its rows
            ids = db.execute(
                "SELECT id FROM requests WHERE status = 'pending_approval'"
                " AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at, id",
                (to_micros(now),),
            ).fetchall()
            return [self._load(db, row[0]) for row in ids]

    def sign_off_review(
        self, request_id: str, change: Callable[[BreakGlassReview, RequestRecord], ReviewChange]
    ) -> BreakGlassReview:
        def work(db: sqlite3.Connection) -> BreakGlassReview:
            review = self._review(db, request_id)
            if review is None or review.closed_at is not None:
                raise ApprovalError("approval.review_not_open",
                                    f"request `{request_id}` has no open break-glass review")
            result = change(review, self._load(db, request_id))
            s = result.signoff
            try:
                db.execute(
                    "INSERT INTO break_glass_signoffs (id, request_id, reviewer_id, channel, comment, at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (s.id, s.request_id, s.reviewer_id, s.channel, s.comment, to_micros(s.at)),
                )
            except sqlite3.IntegrityError:
                raise ApprovalError("approval.duplicate", f"`{s.reviewer_id}` has already signed off") from None
            if result.closes:
                db.execute("UPDATE break_glass_reviews SET closed_at = ? WHERE request_id = ?",
                           (to_micros(s.at), request_id))
            self._append(db, result.events)
            return self._review(db, request_id)  # type: ignore[return-value]

        return self._writer.run(work)

    def open_reviews(self) -> list[BreakGlassReview]:
        with self._snapshot() as db:  # no review half-signed between its rows
            ids = db.execute("SELECT request_id FROM break_glass_reviews WHERE closed_at IS NULL"
                             " ORDER BY due_at, request_id").fetchall()
            return [r for r in (self._review(db, row[0]) for row in ids) if r is not None]

    @staticmethod
    def _review(db: sqlite3.Connection, request_id: str) -> BreakGlassReview | None:
        row = db.execute(
            "SELECT request_id, entry_id, used_by, justification, opened_at, due_at, closed_at"
            " FROM break_glass_reviews WHERE request_id = ?", (request_id,),
        ).fetchone()
        if row is None:
            return None
        signoffs = tuple(
            signoff_from_row(s)
            for s in db.execute("SELECT id, request_id, reviewer_id, channel, comment, at FROM break_glass_signoffs"
                                " WHERE request_id = ? ORDER BY at, rowid", (request_id,))
        )
        return BreakGlassReview(row[0], row[1], row[2], row[3], from_micros(row[4]),  # type: ignore[arg-type]
                                from_micros(row[5]), from_micros(row[6]), signoffs)  # type: ignore[arg-type]

    def audit_entries(self, start: int = 0, stop: int | None = None) -> Iterator[StoredEntry]:
        rows = self._read("SELECT idx, leaf, leaf_hash FROM audit WHERE idx >= ? AND idx < ? ORDER BY rowid",
                          (start, 2**63 - 1 if stop is None else stop))
        for idx, leaf, leaf_digest in rows:
            yield StoredEntry(idx, bytes(leaf), bytes(leaf_digest))

    # --- the Merkle tree and its checkpoints ---------------------------------------------------

    def log_origin(self) -> str:
        return str(self._read("SELECT origin FROM audit_log", ())[0][0])

    def sign_checkpoint(self, sign: SignCheckpoint) -> CheckpointRecord | None:
        # A long stretch without nodes (the first checkpoint of a big log, a signer that was down) has them completed
        # `_NODE_CHUNK` leaves per write transaction first: other writers wait for one chunk at most, never for all.
        while self._read("SELECT (SELECT coalesce(max(idx) + 1, 0) FROM audit) - tree_size FROM audit_log",
                         ())[0][0] > _NODE_CHUNK:
            self._writer.run(lambda db: self._complete_nodes(db, _NODE_CHUNK))

        def work(db: sqlite3.Connection) -> CheckpointRecord | None:
            size = self._complete_nodes(db)
            last = _last_checkpoint(db)
            made = sign(size, _node_reader(db, size), last)
            if made is None:
                return last
            db.execute("INSERT INTO audit_checkpoints (size, root, note, signed_at) VALUES (?, ?, ?, ?)",
                       (made.size, made.root, made.note, to_micros(made.signed_at)))
            return made

        return self._writer.run(work)

    def checkpoints(self) -> list[CheckpointRecord]:
        rows = self._read("SELECT size, root, note, signed_at FROM audit_checkpoints ORDER BY size", ())
        return [checkpoint_from_row(row) for row in rows]

    def change_checkpoint_note(self, size: int, change: Callable[[str], str]) -> CheckpointRecord:
        def work(db: sqlite3.Connection) -> CheckpointRecord:
            row = db.execute("SELECT size, root, note, signed_at FROM audit_checkpoints WHERE size = ?",
                             (size,)).fetchone()
            changed = changed_checkpoint(row, size, change)
            db.execute("UPDATE audit_checkpoints SET note = ? WHERE size = ?", (changed.note, size))
            return changed

        return self._writer.run(work)

    def checkpoint(self, size: int | None = None) -> CheckpointRecord | None:
        if size is None:
            with self._connection() as db:
                return _last_checkpoint(db)
        rows = self._read("SELECT size, root, note, signed_at FROM audit_checkpoints WHERE size = ?", (size,))
        return checkpoint_from_row(rows[0]) if rows else None

    def read_tree(self, read: Callable[[NodeReader], T]) -> T:
        with self._snapshot() as db:
            (size,) = db.execute("SELECT tree_size FROM audit_log").fetchone()
            return read(_node_reader(db, size))

    def signed_nodes(self, size: int, nodes: Sequence[Node]) -> dict[Node, bytes]:
        def fetch(wanted: Sequence[Node]) -> dict[Node, bytes] | None:
            rows = self._read(_SIGNED_NODES, (json.dumps(wanted), size))
            if not rows:
                return None
            return {(level, index): bytes(digest) for level, index, digest in rows if level is not None}

        return tree.signed_nodes(size, nodes, fetch)

    @staticmethod
    def _complete_nodes(db: sqlite3.Connection, limit: int | None = None) -> int:
        """Write every node completed by the leaves appended since the last call; return the log's size.

        With `limit`, only the nodes of the next `limit` leaves (a bounded write transaction), returning the size
        the nodes then reach. Leaves are read, and nodes written, `_NODE_CHUNK` at a time: memory stays bounded
        whatever the number of leaves, as only the newest node of each level is kept to hash the next ones with.
        """
        (done,) = db.execute("SELECT tree_size FROM audit_log").fetchone()
        (size,) = db.execute("SELECT coalesce(max(idx) + 1, 0) FROM audit").fetchone()
        if size < done:
            return int(size)  # the log lost entries its nodes were built from: the caller refuses to sign
        if limit is not None:
            size = min(size, done + limit)

        def leaves(start: int, stop: int) -> list[tuple[int, bytes]]:
            return db.execute("SELECT idx, leaf_hash FROM audit WHERE idx >= ? AND idx < ? ORDER BY idx",
                              (start, stop)).fetchall()

        for completed in tree.grow(done, size, leaves, _node_reader(db, done), _NODE_CHUNK):
            db.executemany("INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)",
                           [row for row in completed if row[0] > 0])
        db.execute("UPDATE audit_log SET tree_size = ?", (size,))
        return int(size)

    # --- credentials --------------------------------------------------------------------------

    def add_credential(self, credential: CredentialRecord, event: AuditEvent) -> None:
        c = credential
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO credentials (id, role, subject_id, kind, attributes_json, token_sha256, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (c.id, c.role, c.subject_id, c.kind, None if c.attributes is None else json.dumps(c.attributes),
                 c.token_sha256, to_micros(c.created_at)),
            )
            self._append(db, [event])

        return self._writer.run(work)

    def find_credential(self, token_sha256: str) -> CredentialRecord | None:
        rows = self._read(_SELECT_CREDENTIALS + " WHERE token_sha256 = ?", (token_sha256,))
        return credential_from_row(rows[0]) if rows else None

    async def find_credential_async(self, token_sha256: str) -> CredentialRecord | None:
        # One indexed read of a local file in WAL mode (readers never wait for the writer): cheaper on the
        # loop's thread than a hop to another.
        return self.find_credential(token_sha256)

    def list_credentials(self, role: Role | None = None) -> list[CredentialRecord]:
        if role is None:
            rows = self._read(_SELECT_CREDENTIALS + " ORDER BY created_at, id", ())
        else:
            rows = self._read(_SELECT_CREDENTIALS + " WHERE role = ? ORDER BY created_at, id", (role,))
        return [credential_from_row(row) for row in rows]

    def revoke_credential(
        self, credential_id: str, revoked_at: datetime.datetime, event: Callable[[CredentialRecord], AuditEvent]
    ) -> CredentialRecord:
        def work(db: sqlite3.Connection) -> CredentialRecord:
            row = db.execute(_SELECT_CREDENTIALS + " WHERE id = ?", (credential_id,)).fetchone()
            if row is None:
                raise AuthError("auth.unknown_credential", f"no credential `{credential_id}`")
            cursor = db.execute("UPDATE credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                                (to_micros(revoked_at), credential_id))
            if cursor.rowcount != 1:
                raise AuthError("auth.already_revoked", f"credential `{credential_id}` is already revoked")
            revoked = dataclasses.replace(credential_from_row(row), revoked_at=revoked_at)
            self._append(db, [event(revoked)])
            return revoked

        return self._writer.run(work)

    # --- inbox sessions -------------------------------------------------------------------------

    def open_session(self, session: SessionRecord, idle_before: datetime.datetime) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM inbox_sessions WHERE last_seen <= ?", (to_micros(idle_before),))
            db.execute("INSERT INTO inbox_sessions (key_sha256, credential_hash, subject_id, csrf_token, last_seen)"
                       " VALUES (?, ?, ?, ?, ?)", (session.key_sha256, session.credential_hash, session.subject_id,
                                                   session.csrf_token, to_micros(session.last_seen)))

        self._writer.run(work)

    def touch_session(
        self, key_sha256: str, now: datetime.datetime, idle_before: datetime.datetime
    ) -> SessionRecord | None:
        def work(db: sqlite3.Connection) -> SessionRecord | None:
            row = db.execute("SELECT key_sha256, credential_hash, subject_id, csrf_token, last_seen FROM inbox_sessions"
                             " WHERE key_sha256 = ?", (key_sha256,)).fetchone()
            if row is None:
                return None
            if row[4] <= to_micros(idle_before):
                db.execute("DELETE FROM inbox_sessions WHERE key_sha256 = ?", (key_sha256,))
                return None
            db.execute("UPDATE inbox_sessions SET last_seen = ? WHERE key_sha256 = ?", (to_micros(now), key_sha256))
            return SessionRecord(row[0], row[1], row[2], row[3], now)

        return self._writer.run(work)

    def close_session(self, key_sha256: str) -> None:
        self._writer.run(lambda db: db.execute("DELETE FROM inbox_sessions WHERE key_sha256 = ?", (key_sha256,)))

    def ping(self) -> None:
        # A read of the schema, not `SELECT 1`: a store whose file was replaced by an empty one must not look ready.
        self._read("SELECT 1 FROM credentials LIMIT 1", ())

    # --- rows ------------------------------------------------------------------------------

    def _append(self, db: sqlite3.Connection, events: list[AuditEvent]) -> None:
        (index,) = db.execute("SELECT coalesce(max(idx) + 1, 0) FROM audit").fetchone()
        rows = []
        for event in events:
            entry = AuditEntry(index, rfc3339(event.at), event.kind, event.request_id, event.data)
            try:
                stored = seal(entry)
            except (TypeError, ValueError) as exc:
                # An audit entry that cannot be written rolls the state change back with it.
                raise StoreError("store.unavailable", f"audit entry cannot be written: {exc}") from None
            rows.append((stored.index, stored.leaf, stored.leaf_hash))
            index += 1
        db.executemany("INSERT INTO audit (idx, leaf, leaf_hash) VALUES (?, ?, ?)", rows)

    @staticmethod
    def _insert_grant(db: sqlite3.Connection, grant: GrantRecord) -> None:
        db.execute("INSERT INTO grants (jti, request_id, executor, token, digest, policy_version, issued_at,"
                   " expires_at, consumed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", grant_row(grant))

    @staticmethod
    def _grant(db: sqlite3.Connection, jti: str) -> GrantRecord | None:
        row = db.execute(
            "SELECT jti, request_id, executor, token, digest, policy_version, issued_at, expires_at, consumed_at,"
            " result, result_detail FROM grants WHERE jti = ?",
            (jti,),
        ).fetchone()
        return grant_from_row(row) if row else None

    def _load(self, db: sqlite3.Connection, request_id: str) -> RequestRecord:
        row = db.execute(
            "SELECT id, request_json, digest, status, decision_json, created_at, expires_at FROM requests"
            " WHERE id = ?",
            (request_id,),
        ).fetchone()
        if row is None:
            raise ApprovalError("request.not_found", f"no request `{request_id}`")
        approvals = tuple(
            approval_from_row(a)
            for a in db.execute(
                "SELECT id, request_id, approver_id, channel, verdict, comment, at, auth, break_glass FROM approvals"
                " WHERE request_id = ? ORDER BY at, id",
                (request_id,),
            )
        )
        grant_row = db.execute(
            "SELECT jti, request_id, executor, token, digest, policy_version, issued_at, expires_at, consumed_at,"
            " result, result_detail FROM grants WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return RequestRecord(
            id=row[0],
            request=ActionRequest.model_validate_json(row[1]),
            digest=row[2],
            status=row[3],
            decision=json.loads(row[4]),
            created_at=from_micros(row[5]),  # type: ignore[arg-type]
            expires_at=from_micros(row[6]),
            approvals=approvals,
            grant=grant_from_row(grant_row) if grant_row else None,
        )


_SELECT_CREDENTIALS = (
    "SELECT id, role, subject_id, token_sha256, created_at, kind, attributes_json, revoked_at FROM credentials"
)




def _node_reader(db: sqlite3.Connection, size: int) -> BatchReader:
    """The stored nodes of the tree of `size` leaves, many in one query."""

    def fetch(nodes: Sequence[Node]) -> dict[Node, bytes]:
        rows = db.execute(_NODES, (json.dumps(nodes),)).fetchall()
        return {(level, index): bytes(digest) for level, index, digest in rows}

    return tree.stored_nodes(size, fetch)


# Many nodes in one query, given as a JSON array of [level, index] pairs: each inner node by its primary key, the
# leaves (level 0) from the audit table. The CROSS JOINs keep SQLite from scanning either table.
_NODES = ("WITH want (level, idx) AS"
          " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))"
          " SELECT n.level, n.idx, n.hash FROM want CROSS JOIN audit_nodes AS n"
          " ON n.level = want.level AND n.idx = want.idx"
          " UNION ALL SELECT 0, a.idx, a.leaf_hash FROM want CROSS JOIN audit AS a"
          " ON want.level = 0 AND a.idx = want.idx")
# The same with the checkpoint they are proved against: no row without that checkpoint, one row of NULLs when it
# is there and no node was asked for (or found).
_SIGNED_NODES = ("SELECT found.* FROM audit_checkpoints LEFT JOIN ("
                 "WITH want (level, idx) AS"
                 " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))"
                 " SELECT n.level, n.idx, n.hash FROM want CROSS JOIN audit_nodes AS n"
                 " ON n.level = want.level AND n.idx = want.idx"
                 " UNION ALL SELECT 0, a.idx, a.leaf_hash FROM want CROSS JOIN audit AS a"
                 " ON want.level = 0 AND a.idx = want.idx"
                 ") AS found ON 1 WHERE size = ?")


def _last_checkpoint(db: sqlite3.Connection) -> CheckpointRecord | None:
    row = db.execute("SELECT size, root, note, signed_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    return checkpoint_from_row(row) if row else None
