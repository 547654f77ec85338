"""SQL-independent pieces of the stores: times as integer microseconds, and records built from rows (columns in
the order of the SQLite store's SELECTs)."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import re
from collections.abc import Callable
from typing import Any

from interlock.core.approval import Approval
from interlock.core.errors import AuditError
from interlock.store.base import CheckpointRecord, CredentialRecord, GrantRecord, ReviewSignoff

# A parameter name a velocity sum may read (it ends up in a JSON path).
PARAM_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
# Statuses that do not count toward velocity limits: nothing was, or will be, executed.
NOT_COUNTED = ("denied", "rejected")
# SQLite's CAST(text AS REAL): leading whitespace, then the longest prefix that reads as a number.
_REAL_PREFIX = re.compile(r"[ \t\n\v\f\r]*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)")


def to_micros(at: datetime.datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return round(at.timestamp() * 1_000_000)


def from_micros(value: int | None) -> datetime.datetime | None:
    if value is None:
        return None
    return datetime.datetime.fromtimestamp(value / 1_000_000, tz=datetime.UTC)


def at_micros(value: int) -> datetime.datetime:
    """A time that is never NULL in its column."""
    return datetime.datetime.fromtimestamp(value / 1_000_000, tz=datetime.UTC)


@functools.lru_cache(maxsize=64)
def rfc3339(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def check_param(param: str) -> None:
    if not param or not set(param) <= PARAM_NAME:
        raise ValueError(f"`{param}` is not a parameter name")


def sqlite_real(text: str) -> float:
    """A string parameter as SQLite's velocity sum counts it, so a number sent as a string counts on every store."""
    match = _REAL_PREFIX.match(text)
    return float(match.group(1)) if match else 0.0


def optional_micros(at: datetime.datetime | None) -> int | None:
    return None if at is None else to_micros(at)


def grant_row(grant: GrantRecord) -> tuple[Any, ...]:
    """A new grant's values, in the order of the stores' INSERT: jti, request_id, executor, token, digest,
    policy_version, issued_at, expires_at, consumed_at (set when it was taken at once: `Gate.take_async`)."""
    return (grant.jti, grant.request_id, grant.executor, grant.token, grant.digest, grant.policy_version,
            to_micros(grant.issued_at), to_micros(grant.expires_at), optional_micros(grant.consumed_at))


def grant_from_row(row: tuple[Any, ...]) -> GrantRecord:
    return GrantRecord(
        jti=row[0], request_id=row[1], executor=row[2], token=row[3], digest=row[4], policy_version=row[5],
        issued_at=at_micros(row[6]), expires_at=at_micros(row[7]),
        consumed_at=from_micros(row[8]), result=row[9], result_detail=row[10],
    )


def approval_from_row(row: tuple[Any, ...]) -> Approval:
    return Approval(row[0], row[1], row[2], row[3], row[4], row[5], at_micros(row[6]), row[7], bool(row[8]))


def credential_from_row(row: tuple[Any, ...]) -> CredentialRecord:
    return CredentialRecord(
        id=row[0], role=row[1], subject_id=row[2], token_sha256=row[3], created_at=at_micros(row[4]),
        kind=row[5], attributes=None if row[6] is None else json.loads(row[6]), revoked_at=from_micros(row[7]),
    )


def signoff_from_row(row: tuple[Any, ...]) -> ReviewSignoff:
    return ReviewSignoff(row[0], row[1], row[2], row[3], row[4], at_micros(row[5]))


def checkpoint_from_row(row: tuple[Any, ...]) -> CheckpointRecord:
    """A checkpoint from (size, root, note, signed_at)."""
    return CheckpointRecord(int(row[0]), bytes(row[1]), row[2], at_micros(row[3]))


def changed_checkpoint(row: tuple[Any, ...] | None, size: int, change: Callable[[str], str]) -> CheckpointRecord:
    """The checkpoint read for `Store.change_checkpoint_note`, with its note changed; `audit.out_of_range` if none."""
    if row is None:
        raise AuditError("audit.out_of_range", f"no checkpoint was signed at {size} entries")
    checkpoint = checkpoint_from_row(row)
    return dataclasses.replace(checkpoint, note=change(checkpoint.note))
