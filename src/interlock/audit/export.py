"""The audit log exported as one JSON document, verifiable offline with nothing but the log's public key.

    {"format": "interlock-audit-export/1", "origin": ..., "public_key": <C2SP verifier key>,
     "checkpoint": <signed note>, "entries": [<each leaf, as the UTF-8 text it is>, ...]}

The `public_key` inside is a convenience for finding the right key, never trusted: whoever verifies
brings the key they already hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from interlock.audit.checkpoint import VerifierKey
from interlock.audit.log import StoredEntry, Verification, verify
from interlock.audit.merkle import leaf_hash
from interlock.core.errors import AuditError

FORMAT = "interlock-audit-export/1"


def export(entries: Iterable[StoredEntry], key: VerifierKey, checkpoint: str) -> dict[str, Any]:
    """The export document of a log whose newest signed checkpoint is `checkpoint`."""
    return {"format": FORMAT, "origin": key.name, "public_key": key.encode(), "checkpoint": checkpoint,
            "entries": [entry.leaf.decode() for entry in entries]}


def verify_export(document: bytes, key: VerifierKey, since: Iterable[str] = ()) -> Verification:
    """Verify an export against `key`: its entries, its checkpoint, and any checkpoints seen `since`."""
    entries, checkpoint = read_export(document)
    stored = [StoredEntry(index, leaf.encode(), leaf_hash(leaf.encode())) for index, leaf in enumerate(entries)]
    return verify(stored, [checkpoint, *since], key)


def read_export(document: bytes) -> tuple[list[str], str]:
    """The entries (leaves as text) and the checkpoint of an export; `audit.bad_export` if it is not one."""
    try:
        body = json.loads(document)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AuditError("audit.bad_export", f"the export is not JSON: {error}") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise AuditError("audit.bad_export", f"the export is not an {FORMAT} document")
    entries, checkpoint = body.get("entries"), body.get("checkpoint")
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries) or not isinstance(
            checkpoint, str):
        raise AuditError("audit.bad_export", "the export needs `entries` (strings) and a `checkpoint` (a signed note)")
    return entries, checkpoint
