"""The audit log: leaves, and verification naming each edited, deleted or moved entry and each checkpoint
the log no longer matches or reaches (INVARIANT 6)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interlock.audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from interlock.audit.log import AuditEntry, StoredEntry, seal, verify
from interlock.audit.merkle import EMPTY_ROOT, leaf_hash, root

SIGNER = NoteSigner("interlock/test-log", Ed25519PrivateKey.generate())
KEY = SIGNER.verifier


def entry(index: int, kind: str = "request.decided", **data: object) -> AuditEntry:
    return AuditEntry(index, f"2026-11-25T09:00:{index:02d}.000000Z", kind, f"req_{index}", {"n": index, **data})


def log(size: int) -> list[StoredEntry]:
    return [seal(entry(index)) for index in range(size)]


def resealed(stored: list[StoredEntry]) -> list[StoredEntry]:
    """What an attacker with write access but no key could do: recompute every hash after an edit."""
    return [StoredEntry(item.index, item.leaf, leaf_hash(item.leaf)) for item in stored]


def checkpoint_of(stored: list[StoredEntry], signer: NoteSigner = SIGNER) -> str:
    return sign_checkpoint(Checkpoint(signer.name, len(stored), root([s.leaf_hash for s in stored])), signer)


def edited(stored: list[StoredEntry], index: int) -> list[StoredEntry]:
    body = json.loads(stored[index].leaf)
    body["data"]["n"] = 999
    changed = list(stored)
    changed[index] = dataclasses.replace(stored[index], leaf=rfc8785.dumps(body))
    return changed


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


def test_seal_hashes_the_leaf_with_the_rfc6962_zero_prefix() -> None:
    sealed = seal(entry(0))
    assert sealed.leaf == entry(0).leaf()
    assert sealed.leaf_hash == hashlib.sha256(b"\x00" + sealed.leaf).digest()


def test_an_untouched_log_verifies_against_its_checkpoint() -> None:
    stored = log(6)
    result = verify(stored, [checkpoint_of(stored)], KEY)
    expected_root = root([s.leaf_hash for s in stored]).hex()
    assert result.to_json() == {"ok": True, "entries": 6, "root": expected_root, "signed": 6, "problems": []}


def test_entries_after_the_newest_checkpoint_verify_but_are_not_signed() -> None:
    stored = log(6)
    result = verify(stored, [checkpoint_of(stored[:2]), checkpoint_of(stored[:4])], KEY)
    assert (result.ok, result.entries, result.signed) == (True, 6, 4)


def test_an_empty_log_verifies_with_the_empty_root() -> None:
    result = verify([])
    assert result.ok
    assert (result.entries, result.root, result.signed) == (0, EMPTY_ROOT.hex(), 0)


def test_an_edited_leaf_is_named() -> None:
    result = verify(edited(log(5), 2))
    assert not result.ok
    assert result.problems == ("entry 2: content was edited (leaf hash does not match)",)


def test_an_edit_with_recomputed_hashes_is_caught_by_the_checkpoint_covering_it() -> None:
    stored = log(5)
    signed = checkpoint_of(stored[:4])
    result = verify(resealed(edited(stored, 2)), [signed], KEY)
    assert result.problems == ("checkpoint 4: the first 4 entries are not the ones it signed (rewritten)",)
    assert result.signed == 0


def test_an_edit_after_the_newest_checkpoint_is_not_caught_once_rehashed() -> None:
    # The limit of any log: what no signature covers yet can be rewritten by whoever holds the database.
    stored = log(5)
    assert verify(resealed(edited(stored, 4)), [checkpoint_of(stored[:4])], KEY).ok


def test_a_deleted_entry_is_named() -> None:
    stored = log(5)
    signed = checkpoint_of(stored)
    del stored[2]
    result = verify(stored, [signed], KEY)
    assert not result.ok
    assert result.problems[0] == "entry 2: missing (deleted)"
    assert "checkpoint 5: signed for 5 entries, the log has 4 (truncated, or an older copy restored)" in result.problems


def test_several_deleted_entries_are_each_named() -> None:
    stored = log(6)
    del stored[1:4]
    problems = verify(stored).problems
    assert [p for p in problems if "missing" in p] == [f"entry {n}: missing (deleted)" for n in (1, 2, 3)]


def test_a_truncated_tail_is_caught_by_a_checkpoint_that_reached_it() -> None:
    stored = log(5)
    signed = checkpoint_of(stored)
    assert verify(stored[:3]).ok, "without a checkpoint a shorter log is just a shorter log"
    assert verify(stored[:3], [signed], KEY).problems == (
        "checkpoint 5: signed for 5 entries, the log has 3 (truncated, or an older copy restored)",)


def test_swapped_entries_are_named() -> None:
    stored = log(5)
    stored[1], stored[3] = stored[3], stored[1]
    result = verify(stored)
    assert not result.ok
    assert "entry 2: out of order after entry 3 (reordered)" in result.problems
    assert "entry 1: out of order after entry 2 (reordered)" in result.problems
    assert not any("missing" in p for p in result.problems)  # nothing was deleted


def test_entries_renumbered_into_another_position_are_named_as_moved() -> None:
    stored = log(4)
    one, two = stored[1], stored[2]
    stored[1] = dataclasses.replace(two, index=1)
    stored[2] = dataclasses.replace(one, index=2)
    result = verify(resealed(stored))
    assert result.problems == (
        "entry 1: its content says index 2 (entry moved)",
        "entry 2: its content says index 1 (entry moved)",
    )


def test_a_checkpoint_signed_by_another_key_is_a_problem_not_a_pass() -> None:
    stored = log(3)
    stranger = NoteSigner(SIGNER.name, Ed25519PrivateKey.generate())
    result = verify(stored, [checkpoint_of(stored, stranger)], KEY)
    assert not result.ok and result.signed == 0
    assert result.problems[0].startswith("checkpoint: ") and "audit.bad_signature" in result.problems[0]


def test_a_checkpoint_of_another_log_is_refused() -> None:
    stored = log(3)
    other = NoteSigner("interlock/another-log", SIGNER.private_key)
    result = verify(stored, [checkpoint_of(stored, other)], KEY)
    assert not result.ok and result.signed == 0


def test_checkpoints_without_a_key_are_a_problem() -> None:
    stored = log(2)
    assert verify(stored, [checkpoint_of(stored)]).problems == ("checkpoints: no verifier key to check them with",)


@pytest.mark.parametrize("leaf", [b"not json", b"[1, 2]", b'{"index": "0"}', b'{"index": 0, "index": 0}'])
def test_an_unparsable_or_indexless_leaf_is_reported_not_a_crash(leaf: bytes) -> None:
    stored = log(2)
    stored[0] = StoredEntry(0, leaf, leaf_hash(leaf))
    assert verify(stored).problems == ("entry 0: content is not an audit entry",)
