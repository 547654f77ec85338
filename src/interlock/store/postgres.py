"""The PostgreSQL store, for several gate nodes on one database: pooled psycopg 3 connections, READ COMMITTED
writes that lock what they decide on, one advisory lock per principal for velocity, one for the audit log."""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, TypeVar

import anyio.to_thread
import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict

from interlock.audit.log import StoredEntry
from interlock.audit.merkle import Node, NodeReader
from interlock.core.action import ActionRequest
from interlock.core.conditions import History
from interlock.core.errors import ApprovalError, AuthError, GrantError, InterlockError, StoreError
from interlock.store import postgres_audit
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
from interlock.store.postgres_audit import LOCK_NAMESPACE
from interlock.store.rows import (
    NOT_COUNTED,
    approval_from_row,
    at_micros,
    check_param,
    credential_from_row,
    from_micros,
    grant_from_row,
    grant_row,
    optional_micros,
    signoff_from_row,
    sqlite_real,
    to_micros,
)

T = TypeVar("T")
# Every change of a request is announced here, with the request id as payload, when its transaction commits.
CHANGES_CHANNEL = "interlock_changes"
_MIGRATION_LOCK = 1  # (LOCK_NAMESPACE, 1), session-level; the audit log's is (LOCK_NAMESPACE, 2)
_PRINCIPAL_LOCKS = LOCK_NAMESPACE + 1  # (LOCK_NAMESPACE + 1, hashtext(principal id)), transaction-level
_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
_DEFAULT_CONNECT_TIMEOUT = 5  # seconds; an unreachable host is refused after this, not after the OS's TCP timeout


def _unavailable(exc: Exception) -> StoreError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreError("store.unavailable", f"PostgreSQL store failed: {first_line}")


def connect_options(url: str) -> dict[str, Any]:
    """psycopg.connect keyword arguments for `url`: autocommit, and a connect timeout unless the URL sets one."""
    options: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in conninfo_to_dict(url):
        options["connect_timeout"] = _DEFAULT_CONNECT_TIMEOUT
    return options


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, script) of every PostgreSQL migration, oldest first."""
    folder = resources.files("interlock.store") / "migrations" / "postgresql"
    scripts = [item for item in folder.iterdir() if item.name.endswith(".sql")]
    return sorted((int(item.name.split("_", 1)[0]), item.name, item.read_text()) for item in scripts)


def apply_migrations(url: str) -> list[int]:
    """Bring the schema up to date and return the versions this call applied.

    Nodes that start together take turns on a session-level advisory lock, so each migration runs once, in its
    own transaction with its `schema_version` row.
    """
    try:
        with psycopg.connect(url, **connect_options(url)) as conn:
            # Held until this connection closes, whatever happens below.
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, _MIGRATION_LOCK))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
                         " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            done = {row[0] for row in conn.execute("SELECT version FROM schema_version")}
            applied = []
            for version, name, script in migrations():
                if version not in done:
                    with conn.transaction():
                        conn.execute(script)
                        conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)", (version, name))
                    applied.append(version)
            return applied
    except psycopg.Error as exc:
        raise _unavailable(exc) from None


class _PostgresHistory:
    """Velocity counters read inside the caller's write transaction, under the principal's lock."""

    def __init__(self, conn: psycopg.Connection[Any], principal_id: str, now: datetime.datetime,
                 exclude: str | None) -> None:
        self._conn, self._principal, self._now, self._exclude = conn, principal_id, to_micros(now), exclude or ""

    def _args(self, action: str, window_seconds: int) -> tuple[Any, ...]:
        return (self._principal, action, self._now - window_seconds * 1_000_000, self._exclude, *NOT_COUNTED)

    def count(self, action: str, window_seconds: int) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM requests WHERE principal_id = %s AND action = %s AND created_at > %s AND id <> %s"
            " AND status NOT IN (%s, %s)",
            self._args(action, window_seconds),
        ).fetchone()
        return int(row[0]) if row else 0

    def sum(self, action: str, param: str, window_seconds: int) -> float:
        check_param(param)
        # Numbers and booleans add up here; strings come back to be read as SQLite reads them (`sqlite_real`),
        # so an amount sent as "5000" counts the same on either store.
        row = self._conn.execute(
            "SELECT sum(CASE jsonb_typeof(v) WHEN 'number' THEN v::numeric WHEN 'boolean' THEN v::boolean::int END),"
            " array_agg(v #>> '{}') FILTER (WHERE jsonb_typeof(v) = 'string')"
            " FROM requests CROSS JOIN LATERAL (SELECT params -> %s) AS p (v) WHERE principal_id = %s AND action = %s"
            " AND created_at > %s AND id <> %s AND status NOT IN (%s, %s)",
            (param, *self._args(action, window_seconds)),
        ).fetchone()
        numbers, strings = (row[0], row[1]) if row else (None, None)
        return float(numbers or 0) + sum(sqlite_real(text) for text in strings or ())


class PostgresStore:
    """A Store on a PostgreSQL database shared by any number of gate processes on any number of machines."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0,
                 migrate: bool = True) -> None:
        """Open a pool on `url` (applying migrations first unless `migrate=False`); `timeout` bounds the wait
        for a connection, after which an operation is refused with `store.unavailable`."""
        self.url = url
        self.applied = apply_migrations(url) if migrate else []
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = psycopg_pool.ConnectionPool(
            url, kwargs=connect_options(url), min_size=min_size, max_size=max_size, timeout=timeout,
            # The pool retries a lost connection with growing pauses until it gives up; giving up soon means the
            # next operation tries at once, so a node serves again as soon as the database is back.
            reconnect_timeout=timeout, open=False, name="interlock",
        )
        self._pool.open(wait=False)

    # --- connections and transactions -------------------------------------------------------

    def _checkout(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[psycopg.Connection[Any], psycopg.Cursor[Any]]:
        """A pooled connection that ran `sql`; one the server dropped while it sat idle is replaced, once."""
        for attempt in (1, 2):
            try:
                conn = self._pool.getconn()
            except psycopg.Error as exc:  # PoolTimeout and PoolClosed are psycopg errors too
                raise _unavailable(exc) from None
            try:
                return conn, conn.execute(sql, args)
            except psycopg.Error as exc:
                broken = conn.broken
                self._pool.putconn(conn)
                if not broken or attempt == 2:
                    raise _unavailable(exc) from None
                # Nothing ran: safe to retry. The server went away once, so its other idle connections are gone too.
                try:
                    self._pool.check()
                except psycopg.Error as closed:
                    raise _unavailable(closed) from None
        raise AssertionError("unreachable")

    @contextmanager
    def _transaction(self, begin: str = "BEGIN") -> Iterator[psycopg.Connection[Any]]:
        conn, _ = self._checkout(begin)
        try:
            try:
                yield conn
                conn.execute("COMMIT")
            except InterlockError:
                self._rollback(conn)
                raise
            except psycopg.Error as exc:
                self._rollback(conn)
                raise _unavailable(exc) from None
            except BaseException:
                self._rollback(conn)
                raise
        finally:
            self._pool.putconn(conn)

    @staticmethod
    def _rollback(conn: psycopg.Connection[Any]) -> None:
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # a broken connection is discarded by the pool; its transaction died with it

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        conn, cursor = self._checkout(sql, args)
        try:
            return cursor.fetchall()
        except psycopg.Error as exc:
            raise _unavailable(exc) from None
        finally:
            self._pool.putconn(conn)

    def start_housekeeping(self) -> None:
        """Nothing to move: the PostgreSQL server keeps its own write-ahead log."""

    def close(self) -> None:
        """Close the pool; an operation in progress finishes first."""
        self._pool.close()

    # --- operations --------------------------------------------------------------------------

    def create_request(
        self,
        request_id: str,
        request: ActionRequest,
        digest: str,
        created_at: datetime.datetime,
        decide: Callable[[History], NewRequest],
    ) -> NewRequest:
        principal = request.principal.id
        with self._transaction() as conn:
            # Two nodes submitting for one principal take turns: each decides on a history holding the other's.
            _lock_principal(conn, principal)
            new = decide(_PostgresHistory(conn, principal, created_at, None))
            conn.execute(
                "INSERT INTO requests (id, principal_id, action, digest, request_json, status, decision_json,"
                " created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (request_id, principal, request.action, digest, request.model_dump_json(), new.status,
                 json.dumps(new.decision), to_micros(created_at),
                 optional_micros(new.expires_at)),
            )
            if new.grant:
                _insert_grant(conn, new.grant)
            postgres_audit.append(conn, new.events)
            return new

    async def create_request_async(
        self,
        request_id: str,
        request: ActionRequest,
        digest: str,
        created_at: datetime.datetime,
        decide: Callable[[History], NewRequest],
    ) -> NewRequest:
        # Each statement is a network round trip: the whole transaction runs on a worker thread.
        return await anyio.to_thread.run_sync(
            lambda: self.create_request(request_id, request, digest, created_at, decide))

    def update_request(self, request_id: str, change: Callable[[RequestRecord], RequestChange]) -> RequestChange:
        with self._transaction() as conn:
            # The row lock makes concurrent approvals of one request take turns: each sees the one before.
            record = _load(conn, request_id, lock=True)
            result = change(record)
            if result.status:
                conn.execute("UPDATE requests SET status = %s WHERE id = %s", (result.status, request_id))
            if result.approval:
                a = result.approval
                try:
                    conn.execute(
                        "INSERT INTO approvals (id, request_id, approver_id, channel, verdict, comment, at, auth,"
                        " break_glass) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (a.id, a.request_id, a.approver_id, a.channel, a.verdict, a.comment, to_micros(a.at),
                         a.auth, a.break_glass),
                    )
                except psycopg.errors.IntegrityError:
                    raise ApprovalError("approval.duplicate", f"`{a.approver_id}` has already decided") from None
            if result.grant:
                _insert_grant(conn, result.grant)
            if result.review:
                r = result.review
                conn.execute(
                    "INSERT INTO break_glass_reviews (request_id, entry_id, used_by, justification, opened_at,"
                    " due_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    (r.request_id, r.entry_id, r.used_by, r.justification, to_micros(r.opened_at),
                     to_micros(r.due_at)),
                )
            _notify(conn, request_id)
            postgres_audit.append(conn, result.events)
            return result

    def consume_grant(
        self,
        jti: str,
        check: Callable[[GrantRecord, LoadRequest], list[AuditEvent]],
        consumed_at: datetime.datetime,
    ) -> GrantRecord:
        with self._transaction() as conn:
            grant = _grant(conn, jti)
            if grant is None:
                raise GrantError("grant.not_issued", "no grant with this id was issued by this gate")
            if grant.consumed_at is not None:
                raise GrantError("grant.already_used", "grant has already been used")

            def load() -> tuple[RequestRecord, History]:
                record = _load(conn, grant.request_id)
                # The principal's lock: no submit of theirs commits between two reads of the history.
                _lock_principal(conn, record.request.principal.id)
                return record, _PostgresHistory(conn, record.request.principal.id, consumed_at, record.id)

            events = check(grant, load)
            # INVARIANT 3: one conditional update; the row count says who won. A concurrent consumer waits on
            # the row and, once the winner commits, re-reads it and matches nothing.
            cursor = conn.execute("UPDATE grants SET consumed_at = %s WHERE jti = %s AND consumed_at IS NULL",
                                  (to_micros(consumed_at), jti))
            if cursor.rowcount != 1:
                raise GrantError("grant.already_used", "grant has already been used")
            _notify(conn, grant.request_id)
            postgres_audit.append(conn, events)
            return dataclasses.replace(grant, consumed_at=consumed_at)

    async def consume_grant_async(
        self,
        jti: str,
        check: Callable[[GrantRecord, LoadRequest], list[AuditEvent]],
        consumed_at: datetime.datetime,
    ) -> GrantRecord:
        return await anyio.to_thread.run_sync(lambda: self.consume_grant(jti, check, consumed_at))

    def record_result(
        self, jti: str, result: str, detail: str, event: AuditEvent, executor: str | None = None
    ) -> GrantRecord:
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE grants SET result = %s, result_detail = %s WHERE jti = %s AND consumed_at IS NOT NULL"
                " AND result IS NULL AND (%s::text IS NULL OR executor = %s)",
                (result, detail, jti, executor, executor),
            )
            grant = _grant(conn, jti)
            if cursor.rowcount != 1:
                if grant is None:
                    raise GrantError("grant.not_issued", "no grant with this id was issued by this gate")
                if executor is not None and grant.executor != executor:
                    raise GrantError("grant.wrong_executor", "only the grant's executor may report its result")
                if grant.consumed_at is None:
                    raise GrantError("grant.not_consumed", "a result can only follow a consumed grant")
                raise GrantError("grant.result_recorded", "the result of this grant is already recorded")
            assert grant is not None  # the row the update just matched
            _notify(conn, grant.request_id)
            postgres_audit.append(conn, [event])
            return grant

    def append_audit(self, events: list[AuditEvent]) -> None:
        if events:
            with self._transaction() as conn:
                postgres_audit.append(conn, events)

    def get_request(self, request_id: str) -> RequestRecord:
        with self._transaction(_SNAPSHOT) as conn:  # one snapshot: no request half-updated between its rows
            return _load(conn, request_id)

    def pending_requests(self, now: datetime.datetime) -> list[RequestRecord]:
        with self._transaction(_SNAPSHOT) as conn:
            ids = conn.execute(
                "SELECT id FROM requests WHERE status = 'pending_approval' AND (expires_at IS NULL OR expires_at > %s)"
                ' ORDER BY created_at, id COLLATE "C"',
                (to_micros(now),),
            ).fetchall()
            return [_load(conn, row[0]) for row in ids]

    def sign_off_review(
        self, request_id: str, change: Callable[[BreakGlassReview, RequestRecord], ReviewChange]
    ) -> BreakGlassReview:
        with self._transaction() as conn:
            # Locked: two reviewers signing at once take turns, so the second sees the first and closes it.
            review = _review(conn, request_id, lock=True)
            if review is None or review.closed_at is not None:
                raise ApprovalError("approval.review_not_open",
                                    f"request `{request_id}` has no open break-glass review")
            result = change(review, _load(conn, request_id))
            s = result.signoff
            try:
                conn.execute(
                    "INSERT INTO break_glass_signoffs (id, request_id, reviewer_id, channel, comment, at)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    (s.id, s.request_id, s.reviewer_id, s.channel, s.comment, to_micros(s.at)),
                )
            except psycopg.errors.IntegrityError:
                raise ApprovalError("approval.duplicate", f"`{s.reviewer_id}` has already signed off") from None
            if result.closes:
                conn.execute("UPDATE break_glass_reviews SET closed_at = %s WHERE request_id = %s",
                             (to_micros(s.at), request_id))
            _notify(conn, request_id)
            postgres_audit.append(conn, result.events)
            return _review(conn, request_id)  # type: ignore[return-value]

    def open_reviews(self) -> list[BreakGlassReview]:
        with self._transaction(_SNAPSHOT) as conn:
            ids = conn.execute('SELECT request_id FROM break_glass_reviews WHERE closed_at IS NULL'
                               ' ORDER BY due_at, request_id COLLATE "C"').fetchall()
            return [r for r in (_review(conn, row[0]) for row in ids) if r is not None]

    def audit_entries(self, start: int = 0, stop: int | None = None) -> Iterator[StoredEntry]:
        with self._transaction(_SNAPSHOT) as conn:
            return iter(postgres_audit.entries(conn, start, stop))

    # --- the Merkle tree and its checkpoints ---------------------------------------------------

    def log_origin(self) -> str:
        with self._transaction(_SNAPSHOT) as conn:
            return postgres_audit.origin(conn)

    def sign_checkpoint(self, sign: SignCheckpoint) -> CheckpointRecord | None:
        with self._transaction() as conn:
            return postgres_audit.sign_checkpoint(conn, sign)

    def checkpoints(self) -> list[CheckpointRecord]:
        with self._transaction(_SNAPSHOT) as conn:
            return postgres_audit.checkpoints(conn)

    def change_checkpoint_note(self, size: int, change: Callable[[str], str]) -> CheckpointRecord:
        with self._transaction() as conn:
            return postgres_audit.change_checkpoint_note(conn, size, change)

    def checkpoint(self, size: int | None = None) -> CheckpointRecord | None:
        return postgres_audit.checkpoint(self._query, size)

    def read_tree(self, read: Callable[[NodeReader], T]) -> T:
        with self._transaction(_SNAPSHOT) as conn:  # one snapshot: the size and every node read agree
            return read(postgres_audit.node_reader(conn, postgres_audit.tree_size(conn)))

    def signed_nodes(self, size: int, nodes: Sequence[Node]) -> dict[Node, bytes]:
        # One statement in autocommit, one round trip: its snapshot holds the checkpoint and every node it reads.
        return postgres_audit.signed_nodes(self._query, size, nodes)

    # --- credentials --------------------------------------------------------------------------

    def add_credential(self, credential: CredentialRecord, event: AuditEvent) -> None:
        c = credential
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO credentials (id, role, subject_id, token_sha256, created_at, kind, attributes_json)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (c.id, c.role, c.subject_id, c.token_sha256, to_micros(c.created_at), c.kind,
                 None if c.attributes is None else json.dumps(c.attributes)),
            )
            postgres_audit.append(conn, [event])

    def find_credential(self, token_sha256: str) -> CredentialRecord | None:
        rows = self._query(_SELECT_CREDENTIALS + " WHERE token_sha256 = %s", (token_sha256,))
        return credential_from_row(rows[0]) if rows else None

    async def find_credential_async(self, token_sha256: str) -> CredentialRecord | None:
        return await anyio.to_thread.run_sync(self.find_credential, token_sha256)

    def list_credentials(self, role: Role | None = None) -> list[CredentialRecord]:
        rows = self._query(_SELECT_CREDENTIALS + " WHERE %s::text IS NULL OR role = %s"
                           ' ORDER BY created_at, id COLLATE "C"', (role, role))
        return [credential_from_row(row) for row in rows]

    def revoke_credential(
        self, credential_id: str, revoked_at: datetime.datetime, event: Callable[[CredentialRecord], AuditEvent]
    ) -> CredentialRecord:
        with self._transaction() as conn:
            row = conn.execute(_SELECT_CREDENTIALS + " WHERE id = %s",
                               (credential_id,)).fetchone()
            if row is None:
                raise AuthError("auth.unknown_credential", f"no credential `{credential_id}`")
            cursor = conn.execute("UPDATE credentials SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                                  (to_micros(revoked_at), credential_id))
            if cursor.rowcount != 1:
                raise AuthError("auth.already_revoked", f"credential `{credential_id}` is already revoked")
            revoked = dataclasses.replace(credential_from_row(row), revoked_at=revoked_at)
            postgres_audit.append(conn, [event(revoked)])
            return revoked

    # --- inbox sessions -------------------------------------------------------------------------

    def open_session(self, session: SessionRecord, idle_before: datetime.datetime) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM inbox_sessions WHERE last_seen <= %s", (to_micros(idle_before),))
            conn.execute("INSERT INTO inbox_sessions (key_sha256, credential_hash, subject_id, csrf_token, last_seen)"
                         " VALUES (%s, %s, %s, %s, %s)", (session.key_sha256, session.credential_hash,
                                                          session.subject_id, session.csrf_token,
                                                          to_micros(session.last_seen)))

    def touch_session(
        self, key_sha256: str, now: datetime.datetime, idle_before: datetime.datetime
    ) -> SessionRecord | None:
        with self._transaction() as conn:
            row = conn.execute("SELECT key_sha256, credential_hash, subject_id, csrf_token, last_seen"
                               " FROM inbox_sessions WHERE key_sha256 = %s FOR UPDATE", (key_sha256,)).fetchone()
            if row is None:
                return None
            if row[4] <= to_micros(idle_before):
                conn.execute("DELETE FROM inbox_sessions WHERE key_sha256 = %s", (key_sha256,))
                return None
            conn.execute("UPDATE inbox_sessions SET last_seen = %s WHERE key_sha256 = %s", (to_micros(now), key_sha256))
            return SessionRecord(row[0], row[1], row[2], row[3], now)

    def close_session(self, key_sha256: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM inbox_sessions WHERE key_sha256 = %s", (key_sha256,))

    def ping(self) -> None:
        # A read of the schema, not `SELECT 1`: a database without Interlock's tables must not look ready.
        self._query("SELECT 1 FROM credentials LIMIT 1")


# --- rows ----------------------------------------------------------------------------------

_SELECT_GRANTS = ("SELECT jti, request_id, executor, token, digest, policy_version, issued_at, expires_at, consumed_at,"
                  " result, result_detail FROM grants")
_SELECT_CREDENTIALS = ("SELECT id, role, subject_id, token_sha256, created_at, kind, attributes_json, revoked_at"
                       " FROM credentials")
_SELECT_REQUEST = ("SELECT id, request_json, digest, status, decision_json, created_at, expires_at FROM requests"
                   " WHERE id = %s")
_SELECT_REQUEST_FOR_UPDATE = _SELECT_REQUEST + " FOR UPDATE"
_SELECT_REVIEW = ("SELECT request_id, entry_id, used_by, justification, opened_at, due_at, closed_at"
                  " FROM break_glass_reviews WHERE request_id = %s")
_SELECT_REVIEW_FOR_UPDATE = _SELECT_REVIEW + " FOR UPDATE"


def _lock_principal(conn: psycopg.Connection[Any], principal_id: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_PRINCIPAL_LOCKS, principal_id))


def _notify(conn: psycopg.Connection[Any], request_id: str) -> None:
    # Delivered when (and only if) the transaction commits, to every node's listener (postgres_notify.py).
    conn.execute("SELECT pg_notify(%s, %s)", (CHANGES_CHANNEL, request_id))


def _insert_grant(conn: psycopg.Connection[Any], grant: GrantRecord) -> None:
    conn.execute("INSERT INTO grants (jti, request_id, executor, token, digest, policy_version, issued_at, expires_at,"
                 " consumed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", grant_row(grant))


def _grant(conn: psycopg.Connection[Any], jti: str) -> GrantRecord | None:
    row = conn.execute(_SELECT_GRANTS + " WHERE jti = %s", (jti,)).fetchone()
    return grant_from_row(row) if row else None


def _load(conn: psycopg.Connection[Any], request_id: str, *, lock: bool = False) -> RequestRecord:
    row = conn.execute(_SELECT_REQUEST_FOR_UPDATE if lock else _SELECT_REQUEST, (request_id,)).fetchone()
    if row is None:
        raise ApprovalError("request.not_found", f"no request `{request_id}`")
    approvals = conn.execute(
        "SELECT id, request_id, approver_id, channel, verdict, comment, at, auth, break_glass FROM approvals"
        ' WHERE request_id = %s ORDER BY at, id COLLATE "C"', (request_id,)
    ).fetchall()
    grant_row = conn.execute(_SELECT_GRANTS + " WHERE request_id = %s", (request_id,)).fetchone()
    return RequestRecord(
        id=row[0],
        request=ActionRequest.model_validate_json(row[1]),
        digest=row[2],
        status=row[3],
        decision=json.loads(row[4]),
        created_at=at_micros(row[5]),
        expires_at=from_micros(row[6]),
        approvals=tuple(approval_from_row(a) for a in approvals),
        grant=grant_from_row(grant_row) if grant_row else None,
    )


def _review(conn: psycopg.Connection[Any], request_id: str, *, lock: bool = False) -> BreakGlassReview | None:
    row = conn.execute(_SELECT_REVIEW_FOR_UPDATE if lock else _SELECT_REVIEW, (request_id,)).fetchone()
    if row is None:
        return None
    signoffs = conn.execute(
        "SELECT id, request_id, reviewer_id, channel, comment, at FROM break_glass_signoffs WHERE request_id = %s"
        " ORDER BY at, seq", (request_id,)
    ).fetchall()
    return BreakGlassReview(row[0], row[1], row[2], row[3], at_micros(row[4]), at_micros(row[5]),
                            from_micros(row[6]), tuple(signoff_from_row(s) for s in signoffs))
