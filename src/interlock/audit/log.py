"""The audit log: entries as RFC 9162 Merkle leaves, and verification against signed checkpoints.

Each entry is serialised once, as compact UTF-8 JSON, and those stored bytes are the Merkle leaf,
hashed as SHA-256(0x00 || leaf). Verification hashes the stored bytes and never re-serialises, so the
leaf need not be canonical — only deterministic for whoever writes it. Stored leaf hashes show an edit
that left them alone; a checkpoint (a signed tree head) shows every rewrite, deletion or truncation of
the entries it covers, even one that recomputed every hash, as long as its signing key was not used.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from interlock.audit.checkpoint import Checkpoint, VerifierKey, open_checkpoint
from interlock.audit.merkle import EMPTY_ROOT, MemoryTree, leaf_hash
from interlock.core import strict_json
from interlock.core.errors import AuditError


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
    """An entry as the store keeps it: its index, the leaf bytes and the leaf hash."""

    index: int
    leaf: bytes
    leaf_hash: bytes


def seal(entry: AuditEntry) -> StoredEntry:
    """The stored form of an entry."""
    leaf = entry.leaf()
    return StoredEntry(entry.index, leaf, leaf_hash(leaf))


@dataclass(frozen=True)
class Verification:
    """The result of verifying a log.

    `root` is the tree head of the entries as stored; `signed` the size of the newest checkpoint that
    verified (every entry below it is covered by a signature), `problems` names what does not verify.
    """

    ok: bool
    entries: int
    root: str
    signed: int = 0
    problems: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "root": self.root, "signed": self.signed,
                "problems": list(self.problems)}


def verify(
    stored: Iterable[StoredEntry], checkpoints: Sequence[str] = (), key: VerifierKey | None = None,
) -> Verification:
    """Recompute every leaf hash in storage order, then the tree at each signed checkpoint.

    Names each edited, missing or moved entry, and each checkpoint the log no longer matches (rewritten)
    or no longer reaches (truncated, or a backup restored). Checkpoints need `key`, the log's verifier key.
    """
    problems: list[str] = []
    tree = MemoryTree()
    previous_index = -1
    seen: set[int] = set()
    for entry in stored:
        digest = leaf_hash(entry.leaf)
        if digest != entry.leaf_hash:
            problems.append(f"entry {entry.index}: content was edited (leaf hash does not match)")
        claimed = _claimed_index(entry)
        if claimed is None:
            problems.append(f"entry {entry.index}: content is not an audit entry")
        elif claimed != entry.index:
            problems.append(f"entry {entry.index}: its content says index {claimed} (entry moved)")
        if entry.index <= previous_index:
            problems.append(f"entry {entry.index}: out of order after entry {previous_index} (reordered)")
        seen.add(entry.index)
        previous_index = entry.index
        tree.append(digest)
    missing = sorted(set(range(max(seen, default=-1) + 1)) - seen)
    problems.extend(f"entry {index}: missing (deleted)" for index in missing)
    signed = 0
    for note in checkpoints:
        checkpoint = _open(note, key, problems)
        if checkpoint is not None and _matches(checkpoint, tree, problems):
            signed = max(signed, checkpoint.size)
    root = tree.root() if tree.size else EMPTY_ROOT
    return Verification(not problems, tree.size, root.hex(), signed, tuple(problems))


def _open(note: str, key: VerifierKey | None, problems: list[str]) -> Checkpoint | None:
    if key is None:
        problems.append("checkpoints: no verifier key to check them with")
        return None
    try:
        return open_checkpoint(note, key, key.name)
    except AuditError as error:
        problems.append(f"checkpoint: {error.message} ({error.code})")
        return None


def _matches(checkpoint: Checkpoint, tree: MemoryTree, problems: list[str]) -> bool:
    size = checkpoint.size
    if size > tree.size:
        problems.append(f"checkpoint {size}: signed for {size} entries, the log has {tree.size}"
                        " (truncated, or an older copy restored)")
        return False
    if tree.root(size) != checkpoint.root:
        problems.append(f"checkpoint {size}: the first {size} entries are not the ones it signed (rewritten)")
        return False
    return True


def _claimed_index(entry: StoredEntry) -> int | None:
    try:
        body = strict_json.parse(entry.leaf)
    except Exception:  # noqa: BLE001 — an unparsable leaf is reported, not raised
        return None
    index = body.get("index") if isinstance(body, dict) else None
    return index if isinstance(index, int) and not isinstance(index, bool) else None
