"""A C2SP tlog-witness: cosign a log's checkpoint only when it extends the last one this witness cosigned.

The witness runs apart from the gates that write the log. A gate operator who rewrites history, restores
an old backup or shows one view to some and another to others cannot get that cosigned: the witness
holds, per log origin, the size and root it last cosigned, and refuses anything that does not extend them
(RFC 9162 consistency proof). Requests carry no credential; the log's checkpoint signature is what
authenticates them. Refusals keep the protocol's meaning in their code; the HTTP layer maps each to the
status the spec names (`STATUS`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from interlock.audit import merkle
from interlock.audit.checkpoint import VerifierKey, parse_checkpoint, parse_note, unb64, verify_note
from interlock.audit.cosignature import Cosigner
from interlock.core.errors import AuditError

MAX_PROOF_LINES = 63
_OLD_SIZE = re.compile(r"old (0|[1-9][0-9]{0,18})")
_log = logging.getLogger(__name__)

# Refusal codes and the HTTP status tlog-witness gives each.
STATUS = {
    "witness.malformed": 400,
    "witness.bad_signature": 403,
    "witness.unknown_log": 404,
    "witness.conflict": 409,
    "witness.inconsistent": 422,
}


@dataclass(frozen=True)
class Witnessed:
    """The latest checkpoint a witness cosigned for one log: its tree size and root hash."""

    size: int
    root: bytes


class WitnessState(Protocol):
    def advance(self, origin: str, step: Callable[[Witnessed | None], Witnessed]) -> None:
        """Atomically, and durably before returning: read the log's record (None: never cosigned), call
        `step` with it and store what it returns. Nothing is stored if `step` raises."""


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: the size the client says the witness holds, a proof from it, the checkpoint."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """`old N\\n`, up to 63 base64 proof hashes a line, an empty line, a signed checkpoint."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("the body is not UTF-8") from None
    head, blank, checkpoint = text.partition("\n\n")
    if not blank:
        raise _malformed("the body is an old size line, proof lines, an empty line and a checkpoint")
    old_line, *proof_lines = head.split("\n")
    old = _OLD_SIZE.fullmatch(old_line)
    if old is None or int(old[1]) >= 1 << 63:
        raise _malformed("the first line is `old` and a tree size in decimal without leading zeros")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise _malformed(f"at most {MAX_PROOF_LINES} consistency proof lines")
    try:
        proof = tuple(unb64(line, "witness.malformed") for line in proof_lines)
    except AuditError:
        raise _malformed("a consistency proof line is not one base64 hash") from None
    if any(len(hash_) != merkle.HASH_SIZE for hash_ in proof):
        raise _malformed(f"a consistency proof hash is {merkle.HASH_SIZE} bytes")
    return AddCheckpoint(int(old[1]), proof, checkpoint)


@dataclass
class Witness:
    """Cosigns checkpoints of the logs it knows (origin → trusted log keys) that extend what it cosigned before."""

    cosigner: Cosigner
    logs: Mapping[str, Sequence[VerifierKey]]
    state: WitnessState
    clock: Callable[[], int]  # POSIX seconds

    def add_checkpoint(self, body: bytes) -> str:
        """Check one add-checkpoint request; return this witness's cosignature line, or refuse (`STATUS`)."""
        request = parse_add_checkpoint(body)
        try:
            text = parse_note(request.checkpoint).text
            checkpoint = parse_checkpoint(text)
        except AuditError as error:
            raise _malformed(f"the checkpoint: {error.message}") from None
        keys = self.logs.get(checkpoint.origin)
        if not keys:
            raise AuditError("witness.unknown_log", f"this witness does not witness {checkpoint.origin!r}")
        try:
            verify_note(request.checkpoint, keys)
        except AuditError as error:
            raise AuditError("witness.bad_signature", f"the log's signature: {error.message}") from None
        if request.old_size > checkpoint.size:
            raise _malformed(f"old size {request.old_size} is above the checkpoint's {checkpoint.size}")

        def step(latest: Witnessed | None) -> Witnessed:
            held = latest or Witnessed(0, merkle.EMPTY_ROOT)
            if request.old_size != held.size:
                raise AuditError("witness.conflict", f"this witness holds {held.size} entries of"
                                 f" {checkpoint.origin!r}, not {request.old_size}", size=held.size)
            if held.size == checkpoint.size and held.root != checkpoint.root:
                _log.warning("log %r signed two roots for %d entries: a split view", checkpoint.origin, held.size)
                raise AuditError("witness.conflict", f"a checkpoint of {held.size} entries with another root than"
                                 " the one cosigned", size=held.size)
            if not merkle.verify_consistency(held.size, checkpoint.size, held.root, checkpoint.root, request.proof):
                _log.warning("log %r: no valid proof that %d entries extend the %d cosigned",
                             checkpoint.origin, checkpoint.size, held.size)
                raise AuditError("witness.inconsistent", f"the proof does not show that {checkpoint.size} entries"
                                 f" extend the {held.size} this witness cosigned")
            return Witnessed(checkpoint.size, checkpoint.root)

        self.state.advance(checkpoint.origin, step)
        return self.cosigner.cosign(text, self.clock()).line()


def _malformed(message: str) -> AuditError:
    return AuditError("witness.malformed", message)
