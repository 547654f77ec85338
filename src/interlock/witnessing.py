"""Getting the log's newest checkpoint cosigned by a witness (C2SP tlog-witness, the client's side).

The witness holds the size it last cosigned for this log. The client does not keep it: it asks with `old 0`,
and a witness that holds more answers 409 with its size; the client then sends the consistency proof from
that size. A witness holding more entries than the log's newest checkpoint means the log lost entries (a
restored backup, a truncation) or showed the witness another history: refused, never "fixed".
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from interlock.audit.checkpoint import b64
from interlock.audit.cosignature import CosignerKey, cosignatures
from interlock.core.errors import AuditError
from interlock.ledger import Ledger

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Cosigned:
    """The newest signed checkpoint with the witness's verified cosignature line added, and that line's time."""

    note: str
    size: int
    witness: str
    at: int


def cosign(ledger: Ledger, url: str, witness: CosignerKey, client: httpx.Client | None = None) -> Cosigned:
    """Have the log's newest signed checkpoint cosigned by `witness` at `url`."""
    latest = ledger.latest()
    if latest is None:
        raise AuditError("audit.no_checkpoint", "the log has no signed checkpoint yet: `interlock audit checkpoint`")
    endpoint = url.rstrip("/") + "/add-checkpoint"
    with client or httpx.Client(timeout=TIMEOUT_S) as http:
        old = 0
        for _ in range(2):  # at most: once to learn the witness's size, once with the proof from it
            proof = ledger.consistency_proof(old, latest.size)["proof"] if old else []
            body = "".join([f"old {old}\n", *(f"{b64(bytes.fromhex(h))}\n" for h in proof), "\n", latest.note])
            answer = _post(http, endpoint, body)
            if answer.status_code != 409 or answer.headers.get("content-type", "").split(";")[0] != "text/x.tlog.size":
                break
            held = _held_size(answer.text)
            if held > latest.size:
                raise AuditError("audit.witness_ahead", f"the witness cosigned {held} entries of this log, more than"
                                 f" the {latest.size} of its newest checkpoint: entries were lost, or the witness"
                                 " was shown another history")
            if held == old:  # it holds the size sent, with another root: not the history it cosigned
                raise AuditError("audit.witness_conflict", f"the witness cosigned another history of {held} entries"
                                 " of this log: the log's entries are not the ones it saw")
            old = held
    if answer.status_code != 200:
        raise AuditError("audit.witness_refused", f"the witness answered {answer.status_code}:"
                         f" {answer.text.strip()[:300]}")
    cosigned = latest.note + answer.text
    try:
        found = cosignatures(cosigned, [witness])
    except AuditError as error:
        raise AuditError("audit.bad_cosignature", f"the witness's answer: {error.message}") from None
    if witness.name not in found:
        raise AuditError("audit.bad_cosignature", f"the witness's answer holds no cosignature of {witness.name}")
    return Cosigned(cosigned, latest.size, witness.name, found[witness.name])


def _post(http: httpx.Client, endpoint: str, body: str) -> httpx.Response:
    try:
        return http.post(endpoint, content=body.encode())
    except httpx.HTTPError as exc:
        raise AuditError("audit.witness_unreachable", f"cannot reach the witness at {endpoint}: {exc}") from None


def _held_size(text: str) -> int:
    value = text.removesuffix("\n")
    if not value.isdecimal() or not value.isascii() or len(value) > 19:
        raise AuditError("audit.witness_refused", f"the witness's 409 does not hold a tree size: {text[:40]!r}")
    return int(value)
