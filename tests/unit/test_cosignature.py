"""C2SP tlog-cosignature v1 (Ed25519): the key ID, the vkey, the signed message and the signature line."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from interlock.audit.checkpoint import Checkpoint, NoteSigner, parse_note, sign_checkpoint
from interlock.audit.cosignature import Cosigner, CosignerKey, cosignatures, uncosigned, with_cosignature
from interlock.core.errors import AuditError

LOG = NoteSigner("example.com/behind-the-sofa", Ed25519PrivateKey.generate())
TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
WITNESS = Cosigner("witness.example.com/w1", Ed25519PrivateKey.generate())
TIME = 1679315147


def public_bytes(cosigner: Cosigner) -> bytes:
    return cosigner.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_a_cosignature_line_is_the_spec_layout_over_the_spec_message() -> None:
    line = WITNESS.cosign(TEXT, TIME).line()
    name, encoded = line.removeprefix("\u2014 ").removesuffix("\n").split(" ")
    raw = base64.b64decode(encoded, validate=True)
    public = public_bytes(WITNESS)
    assert name == "witness.example.com/w1"
    # key ID: SHA-256(name || "\n" || 0x04 || public key)[:4]; then a big-endian u64 time; then Ed25519
    assert raw[:4] == hashlib.sha256(b"witness.example.com/w1\n\x04" + public).digest()[:4]
    assert struct.unpack(">Q", raw[4:12]) == (TIME,)
    message = b"cosignature/v1\ntime 1679315147\n" + TEXT.encode()
    Ed25519PublicKey.from_public_bytes(public).verify(raw[12:], message)  # raises if it is anything else
    assert len(raw) == 4 + 8 + 64


def test_a_witness_key_is_a_type_4_vkey_that_round_trips() -> None:
    encoded = WITNESS.key.encode()
    name, hex_id, material = encoded.split("+", 2)
    assert (name, base64.b64decode(material)[0]) == ("witness.example.com/w1", 0x04)
    assert CosignerKey.parse(encoded) == WITNESS.key
    assert hex_id == WITNESS.key.key_id.hex()


@pytest.mark.parametrize("vkey", [
    LOG.verifier.encode(),  # a log's checkpoint key (type 0x01) is not a cosigner key
    "witness.example.com/w1+{}+{}".format(WITNESS.key.key_id.hex().upper(), WITNESS.key.encode().split("+", 2)[2]),
    "witness.example.com/w1+00000000+" + WITNESS.key.encode().split("+", 2)[2],  # key ID of another key
    "witness.example.com/w1",
])
def test_a_key_that_is_not_a_v1_cosigner_key_is_refused(vkey: str) -> None:
    with pytest.raises(AuditError) as refused:
        CosignerKey.parse(vkey)
    assert refused.value.code == "audit.bad_key"


def test_the_trusted_witnesses_of_a_note_are_found_with_their_time_and_strangers_ignored() -> None:
    stranger = Cosigner("witness.example.com/w2", Ed25519PrivateKey.generate())
    note = sign_checkpoint(Checkpoint(LOG.name, 3, b"\x01" * 32), LOG)
    text = parse_note(note).text
    cosigned = note + WITNESS.cosign(text, TIME).line() + stranger.cosign(text, TIME + 1).line()
    assert cosignatures(cosigned, [WITNESS.key]) == {"witness.example.com/w1": TIME}
    assert cosignatures(note, [WITNESS.key]) == {}


def test_a_cosignature_on_another_text_or_time_refuses_the_note() -> None:
    note = sign_checkpoint(Checkpoint(LOG.name, 3, b"\x01" * 32), LOG)
    other_text = WITNESS.cosign(TEXT, TIME)
    with pytest.raises(AuditError) as refused:
        cosignatures(note + other_text.line(), [WITNESS.key])
    assert refused.value.code == "audit.bad_cosignature"
    genuine = WITNESS.cosign(parse_note(note).text, TIME).signature
    later = struct.pack(">Q", TIME + 1) + genuine[8:]
    forged = note + WITNESS.cosign(TEXT, TIME).line().split(" ")[0] + " " + base64.b64encode(
        WITNESS.key.key_id + later).decode() + "\n"
    with pytest.raises(AuditError):
        cosignatures(forged, [WITNESS.key])


def test_a_time_beyond_2_to_the_63_cannot_be_cosigned() -> None:
    with pytest.raises(AuditError):
        WITNESS.cosign(TEXT, 1 << 63)


def test_each_note_seen_earlier_must_carry_every_witness_given() -> None:
    second = Cosigner("witness.example.com/w2", Ed25519PrivateKey.generate())
    note = sign_checkpoint(Checkpoint(LOG.name, 3, b"\x01" * 32), LOG)
    text = parse_note(note).text
    both = note + WITNESS.cosign(text, TIME).line() + second.cosign(text, TIME).line()
    one = note + WITNESS.cosign(text, TIME).line()
    tampered = one.replace("\n3\n", "\n4\n", 1)
    assert uncosigned([("first", both)], [WITNESS.key, second.key]) == []
    assert uncosigned([("first", both), ("second", one)], [WITNESS.key, second.key]) == [
        "second: no cosignature of witness.example.com/w2"]
    (problem,) = uncosigned([("tampered", tampered)], [WITNESS.key])
    assert problem.endswith("(audit.bad_cosignature)")


def test_a_newer_cosignature_replaces_the_same_witnesss_older_line_and_keeps_the_others() -> None:
    second = Cosigner("witness.example.com/w2", Ed25519PrivateKey.generate())
    note = sign_checkpoint(Checkpoint(LOG.name, 3, b"\x01" * 32), LOG)
    text = parse_note(note).text
    once = with_cosignature(note, WITNESS.cosign(text, TIME).line())
    twice = with_cosignature(with_cosignature(once, second.cosign(text, TIME).line()),
                             WITNESS.cosign(text, TIME + 60).line())
    assert [s.name for s in parse_note(twice).signatures] == [LOG.name, second.name, WITNESS.name]
    assert cosignatures(twice, [WITNESS.key, second.key]) == {WITNESS.name: TIME + 60, second.name: TIME}
    with pytest.raises(AuditError):
        with_cosignature(note, WITNESS.cosign(text, TIME).line() * 2)
