"""The audit hash chain: sealing entries, and verification naming each edited, deleted or moved entry (INVARIANT 6)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import rfc8785

from interlock.audit.chain import (
    GENESIS,
    AuditEntry,
    StoredEntry,
    chain_hash,
    leaf_hash,
    seal,
    verify,
)


def entry(index: int, kind: str = "request.submitted", **data: object) -> AuditEntry:
    return AuditEntry(index, f"2026-11-25T09:00:{index:02d}.000000Z", kind, f"req_{index}", {"n": index, **data})


def log(size: int) -> list[StoredEntry]:
    stored: list[StoredEntry] = []
    previous = GENESIS
    for index in range(size):
        sealed = seal(entry(index), previous)
        stored.append(sealed)
        previous = sealed.chain_hash
    return stored


def resealed(stored: list[StoredEntry]) -> list[StoredEntry]:
    """What an attacker with write access but no key could do: recompute every hash after an edit."""
    out: list[StoredEntry] = []
    previous = GENESIS
    for item in stored:
        digest = leaf_hash(item.leaf)
        out.append(StoredEntry(item.index, item.leaf, digest, chain_hash(previous, digest)))
        previous = out[-1].chain_hash
    return out


def test_leaf_is_compact_json_of_the_whole_entry() -> None:
    item = entry(3, amount=1.5, who="zoë")
    leaf = item.leaf()
    assert json.loads(leaf) == {"index": 3, "at": item.at, "kind": item.kind, "request_id": "req_3",
                                "data": {"n": 3, "amount": 1.5, "who": "zoë"}}
    assert leaf == item.leaf()  # deterministic: the same entry always makes the same leaf
    assert leaf.startswith(b'{"index":3,') and b" " not in leaf
    assert "zoë".encode() in leaf  # UTF-8, not \u escapes


def test_a_leaf_cannot_hold_nan() -> None:
    with pytest.raises(ValueError):
        entry(0, amount=float("nan")).leaf()


def test_leaf_hash_is_rfc6962_with_the_zero_prefix() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    # RFC 6962 test vector: the hash of the empty leaf.
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


def test_seal_links_each_entry_to_the_one_before() -> None:
    first = seal(entry(0), GENESIS)
    second = seal(entry(1), first.chain_hash)
    assert first.leaf_hash == leaf_hash(entry(0).leaf())
    assert first.chain_hash == hashlib.sha256(GENESIS + first.leaf_hash).digest()
    assert second.chain_hash == hashlib.sha256(first.chain_hash + second.leaf_hash).digest()
    assert seal(entry(1), GENESIS).chain_hash != second.chain_hash


def test_an_untouched_log_verifies() -> None:
    stored = log(6)
    result = verify(stored)
    assert result.ok
    assert result.entries == 6
    assert result.head == stored[-1].chain_hash.hex()
    assert result.problems == ()
    assert result.to_json() == {"ok": True, "entries": 6, "head": stored[-1].chain_hash.hex(), "problems": []}


def test_an_empty_log_verifies_with_the_genesis_head() -> None:
    result = verify([])
    assert result.ok
    assert (result.entries, result.head) == (0, GENESIS.hex())


def test_an_edited_leaf_is_named() -> None:
    stored = log(5)
    body = json.loads(stored[2].leaf)
    body["data"]["n"] = 999
    stored[2] = dataclasses.replace(stored[2], leaf=rfc8785.dumps(body))
    result = verify(stored)
    assert not result.ok
    assert result.problems == ("entry 2: content was edited (leaf hash does not match)",)


def test_an_edit_with_recomputed_leaf_hash_breaks_the_chain_at_that_entry() -> None:
    stored = log(5)
    body = json.loads(stored[2].leaf)
    body["data"]["n"] = 999
    leaf = rfc8785.dumps(body)
    stored[2] = dataclasses.replace(stored[2], leaf=leaf, leaf_hash=leaf_hash(leaf))
    result = verify(stored)
    assert not result.ok
    assert result.problems == ("entry 2: chain hash does not follow from the entries before it",)


def test_a_deleted_entry_is_named() -> None:
    stored = log(5)
    del stored[2]
    result = verify(stored)
    assert not result.ok
    assert "entry 2: missing (deleted)" in result.problems
    assert "entry 3: chain hash does not follow from the entries before it" in result.problems


def test_several_deleted_entries_are_each_named() -> None:
    stored = log(6)
    del stored[1:4]
    problems = verify(stored).problems
    assert [p for p in problems if "missing" in p] == [f"entry {n}: missing (deleted)" for n in (1, 2, 3)]


def test_deleting_then_resealing_still_shows_the_gap() -> None:
    stored = log(5)
    del stored[2]
    result = verify(resealed(stored))
    assert result.problems == ("entry 2: missing (deleted)",)


def test_swapped_entries_are_named() -> None:
    stored = log(5)
    stored[1], stored[3] = stored[3], stored[1]
    result = verify(stored)
    assert not result.ok
    assert any(p.startswith("entry 3:") for p in result.problems)
    assert "entry 2: out of order after entry 3 (reordered)" in result.problems
    assert "entry 1: out of order after entry 2 (reordered)" in result.problems
    assert not any("missing" in p for p in result.problems)  # nothing was deleted


def test_entries_renumbered_into_another_position_are_named_as_moved() -> None:
    # Swap two entries and relabel their positions so the indexes look sequential again.
    stored = log(4)
    one, two = stored[1], stored[2]
    stored[1] = dataclasses.replace(two, index=1)
    stored[2] = dataclasses.replace(one, index=2)
    result = verify(resealed(stored))
    assert result.problems == (
        "entry 1: its content says index 2 (entry moved)",
        "entry 2: its content says index 1 (entry moved)",
    )


def test_a_forged_chain_hash_is_named() -> None:
    stored = log(5)
    stored[3] = dataclasses.replace(stored[3], chain_hash=bytes(32))
    result = verify(stored)
    assert not result.ok
    # The forged link fails, and so does the next one, which was computed over the true value.
    assert result.problems == (
        "entry 3: chain hash does not follow from the entries before it",
        "entry 4: chain hash does not follow from the entries before it",
    )


def test_a_forged_last_chain_hash_changes_the_head() -> None:
    stored = log(3)
    honest_head = verify(stored).head
    stored[2] = dataclasses.replace(stored[2], chain_hash=hashlib.sha256(b"forged").digest())
    result = verify(stored)
    assert result.problems == ("entry 2: chain hash does not follow from the entries before it",)
    assert result.head != honest_head


def test_truncation_changes_the_head() -> None:
    # The chain alone cannot tell a truncated log from a shorter one; a checkpoint of the head can.
    stored = log(5)
    assert verify(stored[:3]).ok
    assert verify(stored[:3]).head != verify(stored).head


@pytest.mark.parametrize("leaf", [b"not json", b"[1, 2]", b'{"index": "0"}', b'{"index": 0, "index": 0}'])
def test_an_unparsable_or_indexless_leaf_is_reported_not_a_crash(leaf: bytes) -> None:
    stored = log(2)
    digest = leaf_hash(leaf)
    stored[0] = StoredEntry(0, leaf, digest, chain_hash(GENESIS, digest))
    stored[1] = dataclasses.replace(stored[1], chain_hash=chain_hash(stored[0].chain_hash, stored[1].leaf_hash))
    result = verify(stored)
    assert result.problems == ("entry 0: content is not an audit entry",)
