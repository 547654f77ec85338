"""The audit log as a hash chain of RFC 6962 leaves, and its verification.

Each entry is serialised once, as compact UTF-8 JSON, and those stored bytes are the
Merkle leaf, hashed as SHA-256(0x00 || leaf) per RFC 6962 §2.1, so a Merkle tree with signed
checkpoints can later be built over the same leaves. Verification hashes the stored bytes and never
re-serialises, so the leaf need not be canonical — only deterministic for whoever writes it.
The chain hash links every leaf to all before it: chain[i] = SHA-256(chain[i-1] || leaf_hash[i]).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from interlock.audit.merkle import leaf_hash
from interlock.core import strict_json

GENESIS = bytes(32)


@dataclass(frozen=True)
class AuditEntry:
    """One audited event; `index` is its position in the log, `at` an RFC 3339 UTC time."""

    index: int
    at: str
    kind: str
    request_id: str | None
    data: dict[str, Any]

    def leaf(self) -> bytes:
        body = {"index": self.index, "at": self.at, "kind": self.kind, "request_id": self.request_id, "data": self.data}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@dataclass(frozen=True)
class StoredEntry:
    """An entry as the store keeps it: the leaf bytes and the two hashes."""

    index: int
    leaf: bytes
    leaf_hash: bytes
    chain_hash: bytes


def chain_hash(previous: bytes, leaf_digest: bytes) -> bytes:
    return hashlib.sha256(previous + leaf_digest).digest()


def seal(entry: AuditEntry, previous_chain_hash: bytes) -> StoredEntry:
    """The stored form of an entry appended after `previous_chain_hash`."""
    leaf = entry.leaf()
    digest = leaf_hash(leaf)
    return StoredEntry(entry.index, leaf, digest, chain_hash(previous_chain_hash, digest))


@dataclass(frozen=True)
class Verification:
    """The result of verifying a log: `ok`, how many entries, the head, and each problem found."""

    ok: bool
    entries: int
    head: str
    problems: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "head": self.head, "problems": list(self.problems)}


def verify(stored: Iterable[StoredEntry]) -> Verification:
    """Recompute every leaf and chain hash in storage order; name each edited, missing or moved entry."""
    problems: list[str] = []
    previous = GENESIS
    previous_index = -1
    seen: set[int] = set()
    count = 0
    for entry in stored:
        count += 1
        if leaf_hash(entry.leaf) != entry.leaf_hash:
            problems.append(f"entry {entry.index}: content was edited (leaf hash does not match)")
        claimed = _claimed_index(entry)
        if claimed is None:
            problems.append(f"entry {entry.index}: content is not an audit entry")
        elif claimed != entry.index:
            problems.append(f"entry {entry.index}: its content says index {claimed} (entry moved)")
        if entry.index <= previous_index:
            problems.append(f"entry {entry.index}: out of order after entry {previous_index} (reordered)")
        if chain_hash(previous, entry.leaf_hash) != entry.chain_hash:
            problems.append(f"entry {entry.index}: chain hash does not follow from the entries before it")
        seen.add(entry.index)
        previous, previous_index = entry.chain_hash, entry.index
    missing = sorted(set(range(max(seen, default=-1) + 1)) - seen)
    problems.extend(f"entry {index}: missing (deleted)" for index in missing)
    return Verification(not problems, count, previous.hex(), tuple(problems))


def _claimed_index(entry: StoredEntry) -> int | None:
    try:
        body = strict_json.parse(entry.leaf)
    except Exception:  # noqa: BLE001 — an unparsable leaf is reported, not raised
        return None
    index = body.get("index") if isinstance(body, dict) else None
    return index if isinstance(index, int) and not isinstance(index, bool) else None
