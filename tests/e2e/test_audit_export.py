"""`interlock audit checkpoint|export|public-key|verify --export`: a log checked offline with only its public key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from interlock.audit.checkpoint import VerifierKey, open_checkpoint
from interlock.audit.export import verify_export
from interlock.audit.log import Verification

from .e2e_support import REQUESTS, Run

CEO_PAYMENT = REQUESTS / "ceo-payment.json"
SMALL_PAYMENT = REQUESTS / "small-payment.json"


@pytest.fixture
def exported(cli: Run, home: Path, tmp_path: Path) -> tuple[Path, str]:
    """A home with a few entries, its export and its public key."""
    cli("submit", "--home", home, CEO_PAYMENT).ok()
    cli("submit", "--home", home, SMALL_PAYMENT).ok()
    out = tmp_path / "export.json"
    done = cli("audit", "export", "--home", home, "--out", out).ok()
    assert done["entries"] == 2
    key = cli("audit", "public-key", "--home", home).ok()["public_key"]
    return out, key


def _edited(path: Path, change: str) -> Path:
    document = json.loads(path.read_text())
    if change == "amount":
        document["entries"][0] = document["entries"][0].replace('"amount":48000', '"amount":4800')
    elif change == "dropped":
        document["entries"].pop()
    elif change == "key":
        document["public_key"] = "ignored"  # the file's own key is never trusted
    target = path.with_name(f"export-{change}.json")
    target.write_text(json.dumps(document))
    return target


def test_an_export_verifies_offline_with_the_public_key_alone(interlock: Run, exported: tuple[Path, str],
                                                              tmp_path: Path) -> None:
    path, key = exported
    key_file = tmp_path / "log.vkey"
    key_file.write_text(key + "\n")
    # A real process in another directory, with no home: nothing but the file and the key.
    for key_given in (key, key_file):
        body = interlock("audit", "verify", "--export", path, "--public-key", key_given, cwd=tmp_path).ok()
        assert body["ok"] is True and (body["entries"], body["signed"]) == (2, 2)
    assert not (tmp_path / ".interlock").exists()
    document = json.loads(path.read_text())
    checkpoint = open_checkpoint(document["checkpoint"], VerifierKey.parse(key))
    assert checkpoint.size == 2 and checkpoint.origin == document["origin"]


@pytest.mark.parametrize(("change", "problem"), [
    ("amount", "checkpoint 2: the first 2 entries are not the ones it signed (rewritten)"),
    ("dropped", "checkpoint 2: signed for 2 entries, the log has 1"),
])
def test_an_edited_export_fails_and_says_where(cli: Run, exported: tuple[Path, str], change: str,
                                              problem: str) -> None:
    path, key = exported
    done = cli("audit", "verify", "--export", _edited(path, change), "--public-key", key)
    assert done.code == 1, done
    assert any(p.startswith(problem) for p in done.json()["problems"]), done.json()


def test_the_key_inside_an_export_is_not_trusted(cli: Run, exported: tuple[Path, str], home: Path,
                                                 tmp_path: Path) -> None:
    path, _ = exported
    other = tmp_path / "other-home"
    other.mkdir()
    (other / "policy.yaml").write_text((home / "policy.yaml").read_text())
    cli("submit", "--home", other, SMALL_PAYMENT).ok()
    stranger = cli("audit", "public-key", "--home", other).ok()["public_key"]

    done = cli("audit", "verify", "--export", _edited(path, "key"), "--public-key", stranger)

    assert done.code == 1, done
    assert any("audit.bad_signature" in p for p in done.json()["problems"])


def test_since_proves_a_later_export_extends_an_earlier_checkpoint(cli: Run, exported: tuple[Path, str],
                                                                  home: Path, tmp_path: Path) -> None:
    old_path, key = exported
    seen = tmp_path / "seen.checkpoint"
    seen.write_text(json.loads(old_path.read_text())["checkpoint"])
    cli("submit", "--home", home, SMALL_PAYMENT).ok()
    new_path = tmp_path / "later.json"
    cli("audit", "export", "--home", home, "--out", new_path).ok()
    newer = tmp_path / "newer.checkpoint"
    newer.write_text(json.loads(new_path.read_text())["checkpoint"])

    assert cli("audit", "verify", "--export", new_path, "--public-key", key, "--since", seen).ok()["ok"] is True
    rolled_back = cli("audit", "verify", "--export", old_path, "--public-key", key, "--since", newer)
    assert rolled_back.code == 1, rolled_back
    assert rolled_back.json()["problems"] == [
        "checkpoint 3: signed for 3 entries, the log has 2 (truncated, or an older copy restored)"]


@pytest.mark.parametrize(("args", "code"), [
    (["--export", "EXPORT"], "input.usage"),  # no key: the file's own would prove nothing
    (["--export", "EXPORT", "--public-key", "not-a-key"], "audit.bad_key"),
    (["--export", "MISSING", "--public-key", "KEY"], "input.unreadable"),
    (["--export", "GARBAGE", "--public-key", "KEY"], "audit.bad_export"),
])
def test_bad_arguments_exit_2_with_a_reason(cli: Run, exported: tuple[Path, str], tmp_path: Path,
                                            args: list[str], code: str) -> None:
    path, key = exported
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"format": "something else"}')
    names = {"EXPORT": str(path), "KEY": key, "MISSING": str(tmp_path / "nope.json"), "GARBAGE": str(garbage)}
    done = cli("audit", "verify", *[names.get(a, a) for a in args])
    assert done.code == 2, done
    assert done.json()["error"]["code"] == code


def test_a_checkpoint_is_signed_once_per_size(cli: Run, home: Path) -> None:
    cli("submit", "--home", home, SMALL_PAYMENT).ok()
    first = cli("audit", "checkpoint", "--home", home).ok()
    assert cli("audit", "checkpoint", "--home", home).ok() == first
    cli("submit", "--home", home, SMALL_PAYMENT).ok()
    second = cli("audit", "checkpoint", "--home", home).ok()
    assert (first["size"], second["size"]) == (1, 2)
    verified = cli("audit", "verify", "--home", home).ok()
    assert (verified["entries"], verified["signed"]) == (2, 2)


def _verify_document(document: dict[str, object], key: str) -> Verification:
    return verify_export(json.dumps(document).encode(), VerifierKey.parse(key))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipping_any_byte_of_any_entry_fails_offline(exported: tuple[Path, str], data: st.DataObject) -> None:
    path, key = exported
    document = json.loads(path.read_text())
    entries: list[str] = document["entries"]
    index = data.draw(st.integers(0, len(entries) - 1), label="entry")
    raw = bytearray(entries[index].encode())
    at = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[at] ^= data.draw(st.integers(1, 127), label="xor")
    try:
        entries[index] = raw.decode()
    except UnicodeDecodeError:
        assume(False)  # the export holds text: a flip inside a multi-byte character cannot be written into it

    result = _verify_document(document, key)

    assert not result.ok
    assert any("(rewritten)" in problem for problem in result.problems), result.problems


def test_swapping_two_entries_fails_offline_and_names_them(exported: tuple[Path, str]) -> None:
    path, key = exported
    document = json.loads(path.read_text())
    document["entries"][0], document["entries"][1] = document["entries"][1], document["entries"][0]

    problems = _verify_document(document, key).problems

    assert "entry 0: its content says index 1 (entry moved)" in problems
    assert "entry 1: its content says index 0 (entry moved)" in problems
    assert any("(rewritten)" in problem for problem in problems)
