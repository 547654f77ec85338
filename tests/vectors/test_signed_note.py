"""C2SP signed-note and tlog-checkpoint vectors: golang.org/x/mod's note tests, a sum.golang.org checkpoint,
a sigsum checkpoint from a known seed, and the examples of the C2SP specs."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interlock.audit.checkpoint import (
    Checkpoint,
    NoteSigner,
    VerifierKey,
    key_id,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    sign_checkpoint,
    sign_note,
    verify_note,
)
from interlock.core.errors import AuditError

VECTORS = Path(__file__).parent / "note"
GO = json.loads((VECTORS / "golang_note.json").read_text())
CHECKPOINTS = json.loads((VECTORS / "checkpoints.json").read_text())
TEXT, PETER_SIG, ENOCH_SIG = GO["text"], GO["peter_sig"], GO["enoch_sig"]
PETER = VerifierKey.parse(GO["peter_vkey"])
ENOCH = VerifierKey.parse(GO["enoch_vkey"])


def go_signer(skey: str) -> NoteSigner:
    """A signer from golang.org/x/mod's `PRIVATE+KEY+name+keyid+base64(0x01 || seed)` encoding."""
    _, _, name, _, encoded = skey.split("+", 4)
    raw = base64.b64decode(encoded)
    assert raw[0] == 0x01
    return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))


def code_of(call: Callable[..., object], *args: object) -> str:
    with pytest.raises(AuditError) as raised:
        call(*args)
    return raised.value.code


# --- verifier keys ------------------------------------------------------------------------------------


def test_verifier_key_round_trips_and_its_id_is_the_c2sp_key_id() -> None:
    assert PETER.name == "PeterNeumann" and PETER.key_id.hex() == "c74f20a3"
    assert PETER.encode() == GO["peter_vkey"]
    assert key_id(PETER.name, PETER.public_key) == PETER.key_id
    assert ENOCH.encode() == GO["enoch_vkey"]


def test_every_mangling_of_a_verifier_key_is_refused() -> None:
    # As TestNewVerifier: every proper substring, and every one-byte increment.
    vkey = GO["peter_vkey"]
    manglings = {vkey[i:j] for i in range(len(vkey) + 1) for j in range(i + 1, len(vkey) + 1)} - {vkey}
    manglings |= {vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :] for i in range(len(vkey))}
    manglings |= set(GO["bad_vkeys"])  # wrong key length, unknown algorithm (each with its key ID adjusted)
    accepted = []
    for bad in sorted(manglings):
        try:
            VerifierKey.parse(bad)
            accepted.append(bad)
        except AuditError as error:
            assert error.code == "audit.bad_key"
    assert accepted == []


def test_the_signer_of_the_go_vectors_has_the_published_verifier_key() -> None:
    assert go_signer(GO["peter_skey"]).verifier == PETER


# --- signing and verifying notes -------------------------------------------------------------------------


def test_signing_gives_the_go_signed_note_byte_for_byte() -> None:
    # Ed25519 is deterministic, so the same key and text give the same signature line.
    assert sign_note(TEXT, [go_signer(GO["peter_skey"])]) == GO["signed"]


def test_the_go_signed_note_verifies() -> None:
    note = verify_note(GO["signed"], [PETER])
    assert note.text == TEXT
    assert [(s.name, s.key_id.hex()) for s in note.signatures] == [("PeterNeumann", "c74f20a3")]
    assert verify_note(GO["signed"].encode(), [PETER]).text == TEXT


def test_unknown_signatures_are_ignored_and_each_known_one_is_checked() -> None:
    message = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert [s.name for s in verify_note(message, [PETER]).signatures] == ["PeterNeumann"]
    assert [s.name for s in verify_note(message, [PETER, ENOCH]).signatures] == ["PeterNeumann", "EnochRoot"]
    assert [s.name for s in parse_note(message).signatures] == ["PeterNeumann", "EnochRoot"]


def test_a_note_no_trusted_key_signed_is_refused() -> None:
    assert code_of(verify_note, TEXT + "\n" + PETER_SIG + ENOCH_SIG, []) == "audit.bad_signature"
    assert code_of(verify_note, GO["signed"], [ENOCH]) == "audit.bad_signature"
    misnamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego")  # same key ID, another name: unknown
    assert code_of(verify_note, TEXT + "\n" + misnamed, [PETER]) == "audit.bad_signature"
    other_id = PETER_SIG.replace("x08g", "xxxx")  # same name, another key ID: unknown
    assert code_of(verify_note, TEXT + "\n" + other_id, [PETER]) == "audit.bad_signature"


@pytest.mark.parametrize("altered", [
    TEXT.replace("problem", "solution", 1) + "\n" + PETER_SIG,
    TEXT.replace("\n", " \n", 1) + "\n" + PETER_SIG,
    "\n" + TEXT + "\n" + PETER_SIG,
    TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:],  # the source's invalid signature
    TEXT + "\n" + PETER_SIG[:20] + PETER_SIG[20:].replace("Z", "Y", 1),
], ids=["word", "space", "leading-line", "longer-signature", "flipped-signature"])
def test_an_altered_note_fails(altered: str) -> None:
    assert code_of(verify_note, altered, [PETER]) == "audit.bad_signature"


def test_a_failing_known_signature_refuses_the_note_even_beside_a_good_one() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    assert code_of(verify_note, TEXT + "\n" + PETER_SIG + bad, [PETER]) == "audit.bad_signature"


def test_repeated_signatures_are_counted_once() -> None:
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    message = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
    assert [s.name for s in verify_note(message, [PETER]).signatures] == ["PeterNeumann"]


@pytest.mark.parametrize("message", [
    TEXT,
    TEXT + "\n",
    TEXT + "\n" + PETER_SIG[:-1],
    "\x01" + TEXT + "\n" + PETER_SIG,
    b"\xff" + (TEXT + "\n" + PETER_SIG).encode(),
    TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name")[:-1],
    TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    TEXT + "\n" + PETER_SIG * 101,
    # Beyond the source: one spelling only.
    TEXT.replace("\n", "\r\n") + "\n" + PETER_SIG,
    TEXT + "\n" + PETER_SIG.replace("\u2014", "-"),
    TEXT + "\n" + PETER_SIG.replace(" x08", "  x08"),
    TEXT + "\n" + PETER_SIG.replace("AM=", "AN="),  # non-zero padding bits
    TEXT + "\n" + PETER_SIG.replace("AM=", "AM"),
    TEXT + "\n" + "\u2014 Peter+Neumann " + PETER_SIG.split(" ")[2],
    TEXT + "\n" + "\u2014 PeterNeumann AAAAAA==\n",  # a key ID and no signature
], ids=["no-signatures", "blank-line-only", "no-final-newline", "control-character", "not-utf8",
        "name-with-space", "line-after-signatures", "101-signatures", "crlf", "hyphen-not-em-dash",
        "two-spaces", "non-canonical-base64", "unpadded-base64", "name-with-plus", "empty-signature"])
def test_malformed_notes_are_refused(message: str | bytes) -> None:
    assert code_of(verify_note, message, [PETER]) == "audit.bad_note"


def test_sign_refuses_text_that_cannot_be_a_note() -> None:
    signer = go_signer(GO["peter_skey"])
    assert code_of(sign_note, "abc", [signer]) == "audit.bad_note"  # the source's short text
    assert code_of(sign_note, "a\tb\n", [signer]) == "audit.bad_note"
    assert code_of(sign_note, TEXT, []) == "audit.bad_note"
    assert code_of(NoteSigner, "bad name", signer.private_key) == "audit.bad_key"
    assert code_of(NoteSigner, "a+b", signer.private_key) == "audit.bad_key"


def test_two_trusted_keys_with_one_name_and_key_id_are_refused() -> None:
    impostor = VerifierKey(PETER.name, PETER.key_id, ENOCH.public_key)
    assert code_of(verify_note, GO["signed"], [PETER, impostor]) == "audit.bad_key"
    assert verify_note(GO["signed"], [PETER, PETER]).text == TEXT


# --- checkpoints -------------------------------------------------------------------------------------------


def test_the_sum_golang_org_checkpoint_verifies_with_the_go_command_key() -> None:
    vector = CHECKPOINTS["sumdb"]
    key = VerifierKey.parse(vector["vkey"])
    assert key.encode() == vector["vkey"]
    checkpoint = open_checkpoint(vector["checkpoint"], key, origin=vector["origin"])
    assert checkpoint == Checkpoint(vector["origin"], vector["size"], base64.b64decode(vector["root_base64"]))
    assert checkpoint.text() == vector["checkpoint"].split("\n\n")[0] + "\n"


@pytest.mark.parametrize("edit", [("30055305", "30055306"), ("mXfg", "mXfh"), ("go.sum", "go.sun")],
                         ids=["size", "root", "origin"])
def test_an_altered_sum_golang_org_checkpoint_fails(edit: tuple[str, str]) -> None:
    vector = CHECKPOINTS["sumdb"]
    altered = vector["checkpoint"].replace(*edit, 1)
    assert code_of(open_checkpoint, altered, VerifierKey.parse(vector["vkey"])) == "audit.bad_signature"


def test_a_checkpoint_for_another_origin_is_refused() -> None:
    vector = CHECKPOINTS["sumdb"]
    key = VerifierKey.parse(vector["vkey"])
    assert code_of(open_checkpoint, vector["checkpoint"], key, "example.com/log") == "audit.bad_checkpoint"


def test_signing_the_sigsum_checkpoint_gives_its_bytes_and_it_verifies() -> None:
    vector = CHECKPOINTS["sigsum"]
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["seed_hex"]))
    origin = vector["checkpoint"].split("\n")[0]
    signer = NoteSigner(origin, private)
    checkpoint = Checkpoint(origin, vector["size"], bytes.fromhex(vector["root_hex"]))
    assert sign_checkpoint(checkpoint, signer) == vector["checkpoint"]
    assert open_checkpoint(vector["checkpoint"], signer.verifier, origin) == checkpoint


def test_the_c2sp_examples_parse() -> None:
    vector = CHECKPOINTS["c2sp_examples"]
    note = parse_note(vector["checkpoint"])
    assert parse_checkpoint(note.text) == Checkpoint(
        "example.com/behind-the-sofa", 20852163, base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="))
    assert note.encode() == vector["checkpoint"]
    poem = parse_note(vector["note"])
    assert poem.text.endswith("\ned è subito sera.\n") and "\n\n" in poem.text  # the last blank line splits
    assert [s.name for s in poem.signatures] == ["quasimodo.example/salvatore"]
    assert code_of(verify_note, vector["note"], [PETER]) == "audit.bad_signature"


SUMDB_BODY = CHECKPOINTS["sumdb"]["checkpoint"].split("\n\n")[0] + "\n"


@pytest.mark.parametrize("text", [
    SUMDB_BODY[:-1],
    "go.sum database tree\n30055305\n",
    "\n30055305\nmXfgRcJ0bG0j3CPdKwgGWtUzBUbX67saZGRmFuJGGsM=\n",
    SUMDB_BODY.replace("30055305", "030055305"),
    SUMDB_BODY.replace("30055305", "-1"),
    SUMDB_BODY.replace("30055305", "+30055305"),
    SUMDB_BODY.replace("30055305", "30_055_305"),
    SUMDB_BODY.replace("30055305", "\uff13"),  # a fullwidth digit that int() would accept
    SUMDB_BODY.replace("30055305", "9223372036854775808"),
    SUMDB_BODY.replace("GsM=", "GsN="),
    SUMDB_BODY.replace("mXfg", "mX fg"),
    SUMDB_BODY.replace("=\n", "\n"),
    "go.sum database tree\n30055305\n" + base64.b64encode(bytes(31)).decode() + "\n",
    SUMDB_BODY + "\n",
    SUMDB_BODY + "extension\n\n",
    SUMDB_BODY.replace("tree", "tree\t"),
], ids=["no-final-newline", "no-root", "empty-origin", "leading-zero", "negative", "plus-sign", "underscores",
        "fullwidth-digit", "beyond-int64", "non-canonical-base64", "space-in-base64", "unpadded-base64",
        "short-root", "empty-extension", "empty-extension-after-one", "control-character"])
def test_malformed_checkpoints_are_refused(text: str) -> None:
    assert code_of(parse_checkpoint, text) == "audit.bad_checkpoint"


def test_extension_lines_round_trip() -> None:
    checkpoint = Checkpoint("example.com/log", 0, bytes(32), ("ext one", "ext two"))
    assert parse_checkpoint(checkpoint.text()) == checkpoint
    assert checkpoint.text().endswith("\next one\next two\n")


@pytest.mark.parametrize("checkpoint", [
    Checkpoint("two\nlines", 1, bytes(32)),
    Checkpoint("example.com/log", -1, bytes(32)),
    Checkpoint("example.com/log", 1, bytes(31)),
    Checkpoint("example.com/log", 1, bytes(32), ("",)),
], ids=["newline-in-origin", "negative-size", "short-root", "empty-extension"])
def test_a_checkpoint_that_cannot_be_written_is_refused(checkpoint: Checkpoint) -> None:
    assert code_of(checkpoint.text) == "audit.bad_checkpoint"
