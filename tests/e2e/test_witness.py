"""A witness as its own process (`interlock witness serve`) and a gate's log cosigned with `interlock audit witness`:
a growing log is cosigned again and again; a log restored from a backup, or forked, is refused by the witness
and cannot get its new history cosigned (issue 4, item 6)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import yaml

from .e2e_support import REQUESTS, clean_env
from .served import cli, free_port, running, seeded_home


def interlock(home: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "interlock.cli", *args], capture_output=True, timeout=60,
                          env=clean_env(INTERLOCK_HOME=str(home)))


def grow(home: Path, entries: int) -> int:
    """Submit `entries` requests and sign a checkpoint; the log's size."""
    for _ in range(entries):
        cli(home, "submit", str(REQUESTS / "small-payment.json"))
    return int(cli(home, "audit", "checkpoint")["size"])


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A gate home whose log a running witness witnesses: (home, witness URL, witness key)."""
    home = seeded_home(tmp_path)
    grow(home, 2)
    directory = tmp_path / "witness"
    made = cli(home, "witness", "init", str(directory), "--name", "witness.example/w1")
    config = yaml.safe_load((directory / "witness.yaml").read_text())
    config["logs"] = [cli(home, "audit", "public-key")["public_key"]]
    (directory / "witness.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "interlock.cli", "witness", "serve", str(directory), "--port", str(port)],
                 f"{url}/add-checkpoint", clean_env(), "interlock witness serve"):
        yield home, url, made["key"]


def backup(home: Path, to: Path) -> None:
    with closing(sqlite3.connect(home / "interlock.db")) as source, closing(sqlite3.connect(to)) as copy:
        source.backup(copy)


def restore(home: Path, copy: Path) -> None:
    for suffix in ("-wal", "-shm"):
        (home / f"interlock.db{suffix}").unlink(missing_ok=True)
    (home / "interlock.db").write_bytes(copy.read_bytes())


def test_a_growing_log_is_cosigned_and_its_cosigned_checkpoint_verifies_later(
        witness: tuple[Path, str, str], tmp_path: Path) -> None:
    home, url, key = witness
    first = cli(home, "audit", "witness", "--url", url, "--key", key, "--out", str(tmp_path / "first.note"))
    assert (first["witness"], first["size"]) == ("witness.example/w1", 2)
    assert first["checkpoint"].count("\u2014 ") == 2  # the log's signature and the witness's
    size = grow(home, 3)
    again = cli(home, "audit", "witness", "--url", url, "--key", key)
    assert again["size"] == size == 5
    assert cli(home, "audit", "verify", "--since", str(tmp_path / "first.note"), "--witness-key", key)["ok"] is True
    assert cli(home, "audit", "checkpoint")["checkpoint"] == again["checkpoint"]  # the cosignature is stored
    # an export carries it: checked offline, with the log's and the witness's public keys only
    cli(home, "audit", "export", "--out", str(tmp_path / "log.json"))
    log_key = cli(home, "audit", "public-key")["public_key"]
    offline = cli(home, "audit", "verify", "--export", str(tmp_path / "log.json"), "--public-key", log_key,
                  "--witness-key", key)
    assert (offline["ok"], offline["entries"]) == (True, 5)
    # a checkpoint the operator signed alone does not pass for one the witness saw
    grow(home, 1)
    (tmp_path / "alone.note").write_text(cli(home, "audit", "checkpoint")["checkpoint"])
    alone = interlock(home, "audit", "verify", "--since", str(tmp_path / "alone.note"), "--witness-key", key)
    assert alone.returncode == 1
    assert json.loads(alone.stdout)["problems"] == ["checkpoint 1 seen earlier: no cosignature of witness.example/w1"]
    cli(home, "audit", "export", "--out", str(tmp_path / "newer.json"))
    newer = interlock(home, "audit", "verify", "--export", str(tmp_path / "newer.json"), "--public-key", log_key,
                      "--witness-key", key)
    assert json.loads(newer.stdout)["problems"] == ["the export's checkpoint: no cosignature of witness.example/w1"]


def test_a_log_restored_from_a_backup_cannot_be_cosigned(witness: tuple[Path, str, str], tmp_path: Path) -> None:
    home, url, key = witness
    backup(home, tmp_path / "backup.db")
    grow(home, 3)
    cli(home, "audit", "witness", "--url", url, "--key", key)  # the witness now holds 5 entries
    restore(home, tmp_path / "backup.db")
    grow(home, 1)  # 3 entries, two of them the old ones
    refused = interlock(home, "audit", "witness", "--url", url, "--key", key)
    assert refused.returncode == 3
    assert json.loads(refused.stdout)["error"]["code"] == "audit.witness_ahead"
    grow(home, 2)  # 5 entries again, but not the 5 the witness saw
    refused = interlock(home, "audit", "witness", "--url", url, "--key", key)
    assert json.loads(refused.stdout)["error"]["code"] == "audit.witness_conflict"
    grow(home, 1)  # 6: more than the witness holds, but no proof can show it extends what was cosigned
    refused = interlock(home, "audit", "witness", "--url", url, "--key", key)
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "audit.witness_refused"
    assert error["message"].startswith("the witness answered 422: witness.inconsistent")


def test_a_wrong_witness_key_or_no_witness_is_refused(witness: tuple[Path, str, str], tmp_path: Path) -> None:
    home, url, key = witness
    other = cli(home, "witness", "init", str(tmp_path / "other"), "--name", "witness.example/w1")["key"]
    refused = interlock(home, "audit", "witness", "--url", url, "--key", other)
    assert json.loads(refused.stdout)["error"]["code"] == "audit.bad_cosignature"
    refused = interlock(home, "audit", "witness", "--url", f"http://127.0.0.1:{free_port()}", "--key", key)
    assert json.loads(refused.stdout)["error"]["code"] == "audit.witness_unreachable"
    refused = interlock(home, "audit", "witness", "--url", url, "--key", "not a key")
    assert refused.returncode == 2


def test_a_witness_without_logs_or_key_does_not_start_and_init_keeps_its_name(tmp_path: Path) -> None:
    home = seeded_home(tmp_path)
    directory = tmp_path / "witness"
    key = cli(home, "witness", "init", str(directory), "--name", "witness.example/w1")["key"]
    assert cli(home, "witness", "init", str(directory), "--name", "witness.example/w1")["key"] == key
    renamed = interlock(home, "witness", "init", str(directory), "--name", "witness.example/w2")
    assert (renamed.returncode, json.loads(renamed.stdout)["error"]["code"]) == (2, "input.invalid")
    no_logs = interlock(home, "witness", "serve", str(directory), "--port", str(free_port()))
    assert no_logs.returncode == 2
    assert "names no log to witness" in json.loads(no_logs.stdout)["error"]["message"]
    (directory / "witness-signing.pem").unlink()
    lost = interlock(home, "witness", "key", str(directory))
    assert (lost.returncode, json.loads(lost.stdout)["error"]["code"]) == (2, "input.unreadable")
    assert not (directory / "witness-signing.pem").exists()


def test_a_server_has_each_new_checkpoint_cosigned_by_its_witnesses(witness: tuple[Path, str, str],
                                                                    tmp_path: Path) -> None:
    home, url, key = witness
    (home / "witnesses.yaml").write_text(yaml.safe_dump({"witnesses": [{"url": url, "key": key}]}))
    origin = cli(home, "audit", "public-key")["origin"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "interlock.cli", "serve", "--port", str(port), "--checkpoint-every", "0.2"]
    with running(argv, f"{base}/healthz", clean_env(INTERLOCK_HOME=str(home)), "interlock serve"):
        for size in (2, 3):
            if size == 3:
                cli(home, "submit", str(REQUESTS / "small-payment.json"))
            deadline = time.monotonic() + 20
            while True:  # bounded: the server's checkpointer runs on its own clock
                note = httpx.get(f"{base}/v1/audit/checkpoint").text
                if note.startswith(f"{origin}\n{size}\n") and "\u2014 witness.example/w1 " in note:
                    break
                assert time.monotonic() < deadline, f"no cosigned checkpoint of {size} entries: {note!r}"
                time.sleep(0.2)
    # the cosignature is stored with the checkpoint: whoever is served it can check the witness saw it
    (tmp_path / "served.note").write_text(note)
    verified = cli(home, "audit", "verify", "--witness-key", key, "--since", str(tmp_path / "served.note"))
    assert verified["ok"] is True
