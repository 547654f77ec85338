"""The audit log as a service: verify it, sign its checkpoints, and prove inclusion and consistency.

It needs the store, the log's signing key and a clock — no policy — so the CLI can check a log whose
policy is gone, and every gate node signs checkpoints the same way.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from interlock.audit import merkle
from interlock.audit.checkpoint import Checkpoint, VerifierKey, open_checkpoint, sign_checkpoint
from interlock.audit.log import Verification, verify
from interlock.core.errors import AuditError
from interlock.keys import KeyRing
from interlock.store.base import CheckpointRecord, Store


@dataclass
class Ledger:
    store: Store
    keys: KeyRing
    clock: Callable[[], datetime.datetime]

    def verify(self, since: Sequence[str] = ()) -> Verification:
        """Recompute the log's hashes and check its tree against every checkpoint it signed.

        `since`: checkpoints kept elsewhere (a witness, an earlier export) that the log must still extend;
        a log restored from an older backup, or truncated along with its own checkpoints, fails them.
        """
        notes = [c.note for c in self.store.checkpoints()]
        return verify(self.store.audit_entries(), [*notes, *since], self.key())

    def key(self) -> VerifierKey:
        """The key the log's checkpoints verify with (C2SP verifier key; its name is the log's origin)."""
        return self.keys.log_signer(self.store.log_origin()).verifier

    def latest(self) -> CheckpointRecord | None:
        """The newest signed checkpoint, if any."""
        return self.store.checkpoint()

    def checkpoint(self) -> CheckpointRecord | None:
        """Sign a checkpoint of the log as it is now, if it grew since the last one; return the newest.

        Refuses (`audit.inconsistent`) when the log no longer extends its last signed checkpoint: a node
        never signs a history that contradicts one it signed before.
        """
        signer = self.keys.log_signer(self.store.log_origin())
        now = self.clock()

        def sign(size: int, node: merkle.NodeReader, last: CheckpointRecord | None) -> CheckpointRecord | None:
            previous = open_checkpoint(last.note, signer.verifier, signer.name) if last else None
            if previous is not None and size < previous.size:
                raise AuditError("audit.inconsistent", f"the log has {size} entries, fewer than the {previous.size}"
                                                       " its last checkpoint signed")
            if size == 0:
                return None
            root = merkle.tree_root(size, node)
            if previous is not None and not merkle.verify_consistency(
                    previous.size, size, previous.root, root, merkle.consistency_proof(previous.size, size, node)):
                raise AuditError("audit.inconsistent", f"the log does not extend its checkpoint of {previous.size}"
                                                       " entries: its history was changed")
            if previous is not None and size == previous.size:
                return None
            return CheckpointRecord(size, root, sign_checkpoint(Checkpoint(signer.name, size, root), signer), now)

        return self.store.sign_checkpoint(sign)

    def entry(self, index: int) -> bytes:
        """The stored leaf of entry `index`."""
        for stored in self.store.audit_entries(index, index + 1):
            return stored.leaf
        raise AuditError("audit.out_of_range", f"the log has no entry {index}")

    def inclusion_proof(self, index: int, size: int | None = None) -> dict[str, Any]:
        """The RFC 9162 inclusion proof of entry `index` in the tree of `size` (default: the newest checkpoint)."""
        size = self._newest_size() if size is None else size
        if not 0 <= index < size:
            raise AuditError("audit.out_of_range", f"entry {index} is not in the tree of {size} entries")
        plan = merkle.inclusion_nodes(index, size)
        # The leaf, every node of the proof and the checkpoint of `size` in one read: O(log size) nodes.
        hashes = self.store.signed_nodes(size, [(0, index), *(n for part in plan for n in part)])
        proof = merkle.proof_hashes(plan, hashes)
        return {"index": index, "size": size, "leaf_hash": hashes[(0, index)].hex(), "proof": [h.hex() for h in proof]}

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        """The RFC 9162 consistency proof from the tree of `old_size` to that of `new_size` (default: newest)."""
        new_size = self._newest_size() if new_size is None else new_size
        if not 0 <= old_size <= new_size:
            raise AuditError("audit.out_of_range", f"no consistency proof from {old_size} to {new_size} entries")
        plan = merkle.consistency_nodes(old_size, new_size)
        # Read even when the plan is empty: the read is what checks that `new_size` was signed.
        hashes = self.store.signed_nodes(new_size, [n for part in plan for n in part])
        proof = merkle.proof_hashes(plan, hashes)
        return {"from": old_size, "to": new_size, "proof": [h.hex() for h in proof]}

    def _newest_size(self) -> int:
        """The newest checkpoint's size: proofs are given only for trees a checkpoint signed."""
        signed = self.store.checkpoint()
        if signed is None:
            raise AuditError("audit.no_checkpoint", "the log has no signed checkpoint yet")
        return signed.size
