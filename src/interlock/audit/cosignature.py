"""C2SP tlog-cosignature v1 (Ed25519): a witness's timestamped signature on a checkpoint it checked.

A cosignature is a note signature line from a key of signature type 0x04. Its bytes are a big-endian u64
POSIX timestamp and an Ed25519 signature over `cosignature/v1\\n`, `time <timestamp>\\n` and the checkpoint's
note text: "as of that time, the largest consistent tree this witness saw for the log has this root".
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from interlock.audit.checkpoint import Note, Signature, Vkey, check_key_name, parse_note
from interlock.core.errors import AuditError

COSIGNATURE_V1 = 0x04
_TIMESTAMP = struct.Struct(">Q")
_MAX_TIMESTAMP = (1 << 63) - 1


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a v1 cosignature signs: the header line, the time line and the checkpoint's note text."""
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise AuditError("audit.bad_cosignature", "a cosignature's time is 0 to 2^63-1")
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


@dataclass(frozen=True)
class CosignerKey(Vkey):
    """A witness's public key for v1 cosignatures, under its name (a C2SP vkey of signature type 0x04)."""

    TYPE: ClassVar[int] = COSIGNATURE_V1

    def timestamp(self, text: str, signature: Signature) -> int:
        """The time of this key's valid cosignature on a note text; `audit.bad_cosignature` otherwise."""
        if (signature.name, signature.key_id) != (self.name, self.key_id) or len(signature.signature) != 72:
            raise AuditError("audit.bad_cosignature", f"not a v1 cosignature of {self.name}")
        (timestamp,) = _TIMESTAMP.unpack(signature.signature[:8])
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature.signature[8:], cosigned_message(text, timestamp))
        except InvalidSignature:
            raise AuditError("audit.bad_cosignature", f"the cosignature of {self.name} does not verify") from None
        return int(timestamp)


@dataclass(frozen=True)
class Cosigner:
    """A witness's Ed25519 private key under its name."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        check_key_name(self.name, "audit.bad_key")

    @property
    def key(self) -> CosignerKey:
        public = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return CosignerKey.from_public_key(self.name, public)

    def cosign(self, text: str, timestamp: int) -> Signature:
        """This witness's cosignature, at `timestamp`, on a checkpoint's note text."""
        signed = self.private_key.sign(cosigned_message(text, timestamp))
        return Signature(self.name, self.key.key_id, _TIMESTAMP.pack(timestamp) + signed)


def cosignatures(message: str | bytes, keys: Iterable[CosignerKey]) -> dict[str, int]:
    """The trusted witnesses that cosigned a signed note, each with its cosignature's time.

    Lines from unknown keys are ignored, as C2SP requires; a line from a trusted key that does not verify
    refuses the whole note (`audit.bad_cosignature`).
    """
    note = parse_note(message)
    trusted = {(key.name, key.key_id): key for key in keys}
    found: dict[str, int] = {}
    for signature in note.signatures:
        key = trusted.get((signature.name, signature.key_id))
        if key is not None:
            found[key.name] = max(found.get(key.name, 0), key.timestamp(note.text, signature))
    return found


def uncosigned(notes: Iterable[tuple[str, str]], keys: Iterable[CosignerKey]) -> list[str]:
    """A problem for each (name, note) that lacks a valid cosignature of one of `keys` (all must cosign each)."""
    wanted = list(keys)
    problems: list[str] = []
    for name, note in notes:
        try:
            found = cosignatures(note, wanted)
        except AuditError as error:
            problems.append(f"{name}: {error.message} ({error.code})")
            continue
        problems.extend(f"{name}: no cosignature of {key.name}" for key in wanted if key.name not in found)
    return problems


def with_cosignature(note: str, line: str) -> str:
    """`note` with one more signature line, in place of an earlier line of the same key (a newer cosignature)."""
    current = parse_note(note)
    added = parse_note(current.text + "\n" + line).signatures
    if len(added) != 1:
        raise AuditError("audit.bad_note", "one signature line is added at a time")
    (signature,) = added
    kept = tuple(s for s in current.signatures if (s.name, s.key_id) != (signature.name, signature.key_id))
    return Note(current.text, (*kept, signature)).encode()
