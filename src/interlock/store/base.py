"""The Store port: the few atomic operations the gate needs, and the records they read and write.

Each operation is one transaction: the state change and its audit entries commit together or not at
all. Operations that must decide on fresh state (a velocity limit, an approval quorum, a consume)
take a callback that runs inside the transaction, so the decision and the write cannot interleave
with another node's.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from interlock.audit.log import StoredEntry
from interlock.audit.merkle import Node, NodeReader
from interlock.core.action import ActionRequest
from interlock.core.approval import Approval
from interlock.core.conditions import History

RequestStatus = Literal["allowed", "denied", "pending_approval", "approved", "rejected"]
ExecutionResult = Literal["succeeded", "failed"]
Role = Literal["principal", "approver", "admin"]
T = TypeVar("T")


@dataclass(frozen=True)
class AuditEvent:
    """An event to append to the audit log; the store gives it its index and hashes."""

    kind: str
    request_id: str | None
    data: dict[str, Any]
    at: datetime.datetime


@dataclass(frozen=True)
class GrantRecord:
    """A grant as issued, and what became of it."""

    jti: str
    request_id: str
    executor: str
    token: str
    digest: str
    policy_version: str
    issued_at: datetime.datetime
    expires_at: datetime.datetime
    consumed_at: datetime.datetime | None = None
    result: ExecutionResult | None = None
    result_detail: str | None = None


@dataclass(frozen=True)
class RequestRecord:
    """A request as stored, with its decision, approvals and grant."""

    id: str
    request: ActionRequest
    digest: str
    status: RequestStatus
    decision: dict[str, Any]
    created_at: datetime.datetime
    expires_at: datetime.datetime | None
    approvals: tuple[Approval, ...] = ()
    grant: GrantRecord | None = None


@dataclass(frozen=True)
class NewRequest:
    """What `create_request`'s callback decided to write."""

    status: RequestStatus
    decision: dict[str, Any]
    expires_at: datetime.datetime | None
    events: list[AuditEvent]
    grant: GrantRecord | None = None  # written consumed when its `consumed_at` is set (`Gate.take_async`)


@dataclass(frozen=True)
class ReviewSignoff:
    """One sign-off of a break-glass review by one reviewer."""

    id: str
    request_id: str
    reviewer_id: str
    channel: str
    comment: str
    at: datetime.datetime


@dataclass(frozen=True)
class BreakGlassReview:
    """The post-hoc review a break-glass use opens: due by `due_at`, closed by two sign-offs."""

    request_id: str
    entry_id: str
    used_by: str
    justification: str
    opened_at: datetime.datetime
    due_at: datetime.datetime
    closed_at: datetime.datetime | None = None
    signoffs: tuple[ReviewSignoff, ...] = ()


@dataclass(frozen=True)
class RequestChange:
    """What `update_request`'s callback decided to write."""

    events: list[AuditEvent]
    status: RequestStatus | None = None
    approval: Approval | None = None
    grant: GrantRecord | None = None
    review: BreakGlassReview | None = None  # a break-glass review to open


@dataclass(frozen=True)
class ReviewChange:
    """What `sign_off_review`'s callback decided to write: a sign-off, whether it closes the review, audit."""

    events: list[AuditEvent]
    signoff: ReviewSignoff
    closes: bool = False


@dataclass(frozen=True)
class CredentialRecord:
    """A bearer credential as registered: who it stands for, and the SHA-256 of its token (never the token)."""

    id: str
    role: Role
    subject_id: str
    token_sha256: str
    created_at: datetime.datetime
    kind: str | None = None  # principals only: the registry says what a principal is
    attributes: dict[str, Any] | None = None  # principals only
    revoked_at: datetime.datetime | None = None


LoadRequest = Callable[[], tuple[RequestRecord, History]]


@dataclass(frozen=True)
class SessionRecord:
    """An approver's web session: looked up by the SHA-256 of its id; which credential, and the form token."""

    key_sha256: str
    credential_hash: str
    subject_id: str
    csrf_token: str
    last_seen: datetime.datetime


@dataclass(frozen=True)
class CheckpointRecord:
    """A signed checkpoint of the audit log: its tree size and root, and the C2SP signed note itself."""

    size: int
    root: bytes
    note: str
    signed_at: datetime.datetime


# Given the log's size now, its node reader and the newest checkpoint, return the next one (None: none needed).
SignCheckpoint = Callable[[int, NodeReader, "CheckpointRecord | None"], "CheckpointRecord | None"]


class Store(Protocol):
    """Persistence for the gate. Every method is atomic; any storage failure raises `store.unavailable`."""

    def create_request(
        self,
        request_id: str,
        request: ActionRequest,
        digest: str,
        created_at: datetime.datetime,
        decide: Callable[[History], NewRequest],
    ) -> NewRequest:
        """Insert a request with what `decide` (given the requester's history) returns, and its audit."""
        ...

    async def create_request_async(
        self,
        request_id: str,
        request: ActionRequest,
        digest: str,
        created_at: datetime.datetime,
        decide: Callable[[History], NewRequest],
    ) -> NewRequest:
        """`create_request` for a coroutine; `decide` may run on the event loop's thread."""
        ...

    def update_request(self, request_id: str, change: Callable[[RequestRecord], RequestChange]) -> RequestChange:
        """Apply `change(current record)` to a request: new status, approval, grant and audit, atomically."""
        ...

    def consume_grant(
        self,
        jti: str,
        check: Callable[[GrantRecord, LoadRequest], list[AuditEvent]],
        consumed_at: datetime.datetime,
    ) -> GrantRecord:
        """Mark a grant used exactly once (INVARIANT 3), after `check` passes, with its audit entries.

        `check` gets the grant record and a loader for its request and the requester's history, which
        it calls only when it must re-decide (loading costs time on every consume otherwise).
        """
        ...

    async def consume_grant_async(
        self,
        jti: str,
        check: Callable[[GrantRecord, LoadRequest], list[AuditEvent]],
        consumed_at: datetime.datetime,
    ) -> GrantRecord:
        """`consume_grant` for a coroutine; `check` may run on the event loop's thread."""
        ...

    def record_result(
        self, jti: str, result: ExecutionResult, detail: str, event: AuditEvent, executor: str | None = None
    ) -> GrantRecord:
        """Record the execution result of a consumed grant, once; only its executor may, when one is named."""
        ...

    def append_audit(self, events: list[AuditEvent]) -> None:
        """Append audit entries that change no other state (refusals)."""
        ...

    def get_request(self, request_id: str) -> RequestRecord:
        """A request with its approvals and grant; `request.not_found` if there is none."""
        ...

    def pending_requests(self, now: datetime.datetime) -> list[RequestRecord]:
        """Every request still waiting for approval at `now` (not expired), oldest first, with its approvals."""
        ...

    def audit_entries(self, start: int = 0, stop: int | None = None) -> Iterator[StoredEntry]:
        """The audit entries with `start <= index < stop` (default: all), in storage order."""
        ...

    def log_origin(self) -> str:
        """The audit log's name in its checkpoints, fixed when the store is created."""
        ...

    def sign_checkpoint(self, sign: SignCheckpoint) -> CheckpointRecord | None:
        """In one transaction: complete the tree's nodes up to the log's size, call `sign`, store what it returns.

        Returns the newest checkpoint after that (None while there is none).
        """
        ...

    def checkpoints(self) -> list[CheckpointRecord]:
        """Every signed checkpoint, oldest first."""
        ...

    def change_checkpoint_note(self, size: int, change: Callable[[str], str]) -> CheckpointRecord:
        """In one transaction: the note of the checkpoint signed at `size` replaced by `change(note)` (a witness's
        cosignature added; `change` keeps the signed text). `audit.out_of_range` if no checkpoint has that size."""
        ...

    def checkpoint(self, size: int | None = None) -> CheckpointRecord | None:
        """The checkpoint signed at `size` (default: the newest), or None; one row, however many there are."""
        ...

    def read_tree(self, read: Callable[[NodeReader], T]) -> T:
        """`read(node)` on one consistent snapshot of the tree's nodes (those up to the newest checkpoint); the
        audit bench compares proofs read this way with `signed_nodes`."""
        ...

    def signed_nodes(self, size: int, nodes: Sequence[Node]) -> dict[Node, bytes]:
        """The hashes of `nodes` (level 0: leaf hashes) in the tree a checkpoint signed at `size`, read in one
        statement with that checkpoint; `audit.out_of_range` without one, `store.unavailable` for a missing node."""
        ...

    def sign_off_review(
        self, request_id: str, change: Callable[[BreakGlassReview, RequestRecord], ReviewChange]
    ) -> BreakGlassReview:
        """Add `change(review, request)`'s sign-off (closing the review if it says so) with its audit, atomically;
        `approval.review_not_open` if the request has no break-glass review, `approval.duplicate` on a second
        sign-off by the same reviewer."""
        ...

    def open_reviews(self) -> list[BreakGlassReview]:
        """Every break-glass review not yet closed, soonest due first, with its sign-offs."""
        ...

    def add_credential(self, credential: CredentialRecord, event: AuditEvent) -> None:
        """Register a credential with its audit entry (which must carry neither the token nor its hash)."""
        ...

    def find_credential(self, token_sha256: str) -> CredentialRecord | None:
        """The credential whose token hashes to `token_sha256`, revoked or not; None if there is none."""
        ...

    async def find_credential_async(self, token_sha256: str) -> CredentialRecord | None:
        """`find_credential` for a coroutine (a local read may run on the loop's thread; a remote one may not)."""
        ...

    def list_credentials(self, role: Role | None = None) -> list[CredentialRecord]:
        """Every credential (of one role), oldest first."""
        ...

    def revoke_credential(
        self, credential_id: str, revoked_at: datetime.datetime, event: Callable[[CredentialRecord], AuditEvent]
    ) -> CredentialRecord:
        """Revoke a credential once, with the audit entry `event(record)`; `auth.unknown_credential` or
        `auth.already_revoked` otherwise."""
        ...

    def open_session(self, session: SessionRecord, idle_before: datetime.datetime) -> None:
        """Store a new web session, dropping every session last seen at or before `idle_before`."""
        ...

    def touch_session(
        self, key_sha256: str, now: datetime.datetime, idle_before: datetime.datetime
    ) -> SessionRecord | None:
        """The session, its `last_seen` moved to `now`; None (and dropped) if last seen at or before `idle_before`."""
        ...

    def close_session(self, key_sha256: str) -> None:
        """Drop a session, if there is one."""
        ...

    def start_housekeeping(self) -> None:
        """For a long-running server: move the store's own upkeep off the request path from now on (SQLite: WAL
        checkpoints on a thread of their own); stopped by `close()`. Idempotent."""
        ...

    def ping(self) -> None:
        """Return if the store answers a read of its schema; `store.unavailable` otherwise."""
        ...

    def close(self) -> None: ...
