"""C2SP tlog-checkpoint bodies inside C2SP signed notes, signed and verified with Ed25519 (signature type 0x01).

Parsing is strict — one accepted spelling of every note, key and checkpoint — so two readers can never
disagree about what a signed checkpoint says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from interlock.audit.merkle import HASH_SIZE
from interlock.core.errors import AuditError

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100  # the spec asks verifiers to accept at least 16
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class Signature:
    """One signature line: the key's name, its 4-byte key ID and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """The signature line, newline included."""
        return f"{SIGNATURE_PREFIX}{self.name} {b64(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A signed note: its text (ending in a newline) and every signature line, in order."""

    text: str
    signatures: tuple[Signature, ...]

    def encode(self) -> str:
        """The note as sent: text, a blank line, the signature lines."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


@dataclass(frozen=True)
class Vkey:
    """A C2SP verifier key (`name+hexkeyid+base64(type || key)`): a name, the key ID and a 32-byte Ed25519 public
    key, for signatures of one type (`TYPE`: 0x01 note signatures here, 0x04 cosignatures in cosignature.py)."""

    TYPE: ClassVar[int] = ED25519
    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> Self:
        """The key for an Ed25519 public key under `name`."""
        check_key_name(name, "audit.bad_key")
        return cls(name, key_id(name, ed25519_public_key(public_key), cls.TYPE), public_key)

    @classmethod
    def parse(cls, vkey: str) -> Self:
        """Parse the vkey form strictly: this signature type, and a key ID that is the key's."""
        parts = vkey.split("+", 2)
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise AuditError("audit.bad_key", "a verifier key is name+keyid+key")
        name, hex_id, encoded = parts
        raw = unb64(encoded, "audit.bad_key")
        if len(raw) != 33 or raw[0] != cls.TYPE:
            raise AuditError("audit.bad_key", f"not an Ed25519 key of signature type 0x{cls.TYPE:02x}")
        key = cls.from_public_key(name, raw[1:])
        if key.key_id.hex() != hex_id:
            raise AuditError("audit.bad_key", "the key ID does not match the key")
        return key

    def encode(self) -> str:
        """The vkey form."""
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([self.TYPE]) + self.public_key)}"


@dataclass(frozen=True)
class VerifierKey(Vkey):
    """An Ed25519 note verifier key (signature type 0x01)."""

    def verify(self, text: str, signature: bytes) -> bool:
        """Is `signature` this key's Ed25519 signature of the note text?"""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text.encode())
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 private key under a key name."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        check_key_name(self.name, "audit.bad_key")

    @property
    def verifier(self) -> VerifierKey:
        """The verifier key others check this signer's notes with."""
        public = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return VerifierKey.from_public_key(self.name, public)

    def sign(self, text: str) -> Signature:
        """This key's signature of a note text."""
        return Signature(self.name, self.verifier.key_id, self.private_key.sign(text.encode()))


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint: the log's origin, its tree size, the root hash and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The note text this checkpoint is signed as."""
        lines = [self.origin, str(self.size), b64(self.root), *self.extensions]
        text = "".join(line + "\n" for line in lines)
        if parse_checkpoint(text) != self:
            raise AuditError("audit.bad_checkpoint", "this checkpoint cannot be written as a note")
        return text


def key_id(name: str, public_key: bytes, signature_type: int = ED25519) -> bytes:
    """The C2SP key ID: SHA-256(name || 0x0A || signature type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()[:4]


def ed25519_public_key(public_key: bytes) -> bytes:
    """`public_key` if it is a 32-byte Ed25519 public key; `audit.bad_key` otherwise."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        raise AuditError("audit.bad_key", "not a 32-byte Ed25519 public key") from None
    return public_key


def parse_note(message: str | bytes) -> Note:
    """Split a signed note into its text and signature lines, refusing anything the spec does not allow."""
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError:
            raise AuditError("audit.bad_note", "a signed note is UTF-8") from None
    _check_characters(message, "audit.bad_note")
    split = message.rfind("\n\n")
    if split < 0 or not message.endswith("\n"):
        raise AuditError("audit.bad_note", "a signed note is text, a blank line, then signature lines")
    text, block = message[: split + 1], message[split + 2 :]
    lines = block[:-1].split("\n") if block else []
    if not lines:
        raise AuditError("audit.bad_note", "a signed note has at least one signature")
    if len(lines) > MAX_SIGNATURES:
        raise AuditError("audit.bad_note", f"a signed note has at most {MAX_SIGNATURES} signatures")
    return Note(text, tuple(_parse_signature(line) for line in lines))


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """The signed note of `text` (which must end in a newline) with one signature per signer."""
    _check_characters(text, "audit.bad_note")
    if not text.endswith("\n"):
        raise AuditError("audit.bad_note", "a note's text ends with a newline")
    if not signers:
        raise AuditError("audit.bad_note", "a signed note needs at least one signer")
    note = Note(text, tuple(s.sign(text) for s in signers))
    return note.encode()


def verify_note(message: str | bytes, keys: Iterable[VerifierKey]) -> Note:
    """Parse a note and check it against trusted keys; return it with only the signatures that verified.

    As C2SP requires, signatures from unknown keys (name and key ID not both matching) are ignored; a
    signature from a known key that fails refuses the whole note, and so does a note no known key signed.
    """
    note = parse_note(message)
    known: dict[tuple[str, bytes], VerifierKey] = {}
    for key in keys:
        if known.setdefault((key.name, key.key_id), key) != key:
            raise AuditError("audit.bad_key", f"two trusted keys are both {key.name}+{key.key_id.hex()}")
    verified: list[Signature] = []
    for signature in note.signatures:
        trusted = known.get((signature.name, signature.key_id))
        if trusted is None or signature in verified:
            continue
        if not trusted.verify(note.text, signature.signature):
            raise AuditError("audit.bad_signature", f"the signature of {trusted.name} does not verify")
        verified.append(signature)
    if not verified:
        raise AuditError("audit.bad_signature", "no trusted key signed this note")
    return Note(note.text, tuple(verified))


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a tlog-checkpoint note text: origin, decimal size, base64 root hash, extension lines."""
    _check_characters(text, "audit.bad_checkpoint")
    if not text.endswith("\n"):
        raise AuditError("audit.bad_checkpoint", "a checkpoint ends with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise AuditError("audit.bad_checkpoint", "a checkpoint has an origin, a size and a root hash")
    origin, size, root_hash, *extensions = lines
    if not origin:
        raise AuditError("audit.bad_checkpoint", "the origin line is empty")
    if not _SIZE.fullmatch(size) or int(size) >= 1 << 63:
        raise AuditError("audit.bad_checkpoint", "the tree size is not a decimal without leading zeros")
    root = unb64(root_hash, "audit.bad_checkpoint")
    if len(root) != HASH_SIZE:
        raise AuditError("audit.bad_checkpoint", f"the root hash is not {HASH_SIZE} bytes")
    if not all(extensions):
        raise AuditError("audit.bad_checkpoint", "an extension line is empty")
    return Checkpoint(origin, int(size), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The checkpoint as a signed note."""
    return sign_note(checkpoint.text(), [signer])


def open_checkpoint(message: str | bytes, key: VerifierKey, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint against the log's key and return it; `origin`, if given, must match."""
    checkpoint = parse_checkpoint(verify_note(message, [key]).text)
    if origin is not None and checkpoint.origin != origin:
        raise AuditError("audit.bad_checkpoint", f"the checkpoint is for {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def _parse_signature(line: str) -> Signature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise AuditError("audit.bad_note", "a signature line starts with an em dash and a space")
    name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space:
        raise AuditError("audit.bad_note", "a signature line is a key name, a space and a signature")
    check_key_name(name, "audit.bad_note")
    raw = unb64(encoded, "audit.bad_note")
    if len(raw) < 5:
        raise AuditError("audit.bad_note", "a signature is a 4-byte key ID and at least one byte")
    return Signature(name, raw[:4], raw[4:])


def _check_characters(text: str, code: str) -> None:
    if any(c < " " and c != "\n" for c in text):
        raise AuditError(code, "no control characters but newlines are allowed")


def check_key_name(name: str, code: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise AuditError(code, f"key name {name!r} is empty or has a space or a plus")


def b64(raw: bytes) -> str:
    """Standard base64 (RFC 4648 §4), as notes and checkpoints spell it."""
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str, code: str) -> bytes:
    """Standard base64 decoded strictly: refused (`code`) unless `text` is its one canonical spelling."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AuditError(code, "not standard base64") from None
    if b64(raw) != text:  # one spelling only: no stray padding bits, no missing padding
        raise AuditError(code, "not canonical base64")
    return raw
