"""`interlock scan` and `interlock policy diff` end to end: the installed command, its output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

INTERLOCK = Path(sys.executable).parent / "interlock"  # the console script of the environment running the tests
SEED = Path(__file__).resolve().parents[2] / "examples/seed/policy.yaml"
RECOGNITION = """\
version: 1
sensitive: ["payments.*"]
rules:
  - id: cfo-pays
    action: payments.transfer
    when: "principal.id == 'user:cfo'"
    effect: allow
"""
SAME_CHANNEL = """\
version: 1
sensitive: ["payments.*"]
rules:
  - id: pay
    action: payments.transfer
    effect: require_approval
    approval: {approvers: [user:a, user:b], quorum: 2}
"""

pytestmark = pytest.mark.slow


def run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INTERLOCK), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_exit_codes_follow_fail_on(tmp_path: Path) -> None:
    (tmp_path / "high.yaml").write_text(RECOGNITION)
    (tmp_path / "medium.yaml").write_text(SAME_CHANNEL)
    assert run("scan", tmp_path / "medium.yaml").returncode == 0  # default --fail-on high
    assert run("scan", tmp_path / "medium.yaml", "--fail-on", "medium").returncode == 1
    assert run("scan", tmp_path, "--fail-on", "high").returncode == 1
    assert run("scan", tmp_path, "--fail-on", "never").returncode == 0
    assert run("scan", SEED).returncode == 0
    assert run("scan", SEED, "--fail-on", "low").returncode == 1  # quorum 1 on three sensitive actions


def test_an_incomplete_scan_exits_5_unless_something_fails(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(SAME_CHANNEL)
    (tmp_path / "broken.yaml").write_text("version: 1\nrules: [\n")
    done = run("scan", tmp_path, "--format", "json")
    assert done.returncode == 5
    report = json.loads(done.stdout)
    assert report["summary"]["complete"] is False
    assert report["problems"] == [{"path": "broken.yaml", "code": "scan.unparseable",
                                   "message": report["problems"][0]["message"]}]
    assert run("scan", tmp_path, "--fail-on", "medium").returncode == 1  # failing findings win over 5
    assert run("scan", tmp_path / "missing.yaml").returncode == 5


@pytest.mark.parametrize("args", [
    (), ("--format", "xml"), ("--fail-on", "critical"), ("--no-such-flag",),
])
def test_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    paths = [] if not args else [tmp_path]
    done = run("scan", *paths, *args)
    assert done.returncode == 2, done.stdout + done.stderr


def test_each_format_on_stdout_and_to_a_file(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "policy.yaml").write_text(RECOGNITION)
    (tmp_path / "in" / "blob.json").write_bytes(b"\x00\x01")
    table = run("scan", "in", cwd=tmp_path)
    assert table.returncode == 1
    assert "policy.recognition_as_approval" in table.stdout and "policy.yaml:6" in table.stdout
    assert "scan.binary" in table.stdout
    sarif = json.loads(run("scan", "in", "--format", "sarif", cwd=tmp_path).stdout)
    (result,) = sarif["runs"][0]["results"]
    # relative to the directory the scan ran in (the repository root, for code scanning), not to `in`
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "in/policy.yaml"
    assert sarif["runs"][0]["invocations"][0]["executionSuccessful"] is False
    for report_format, marker in (("html", "<!DOCTYPE html>"), ("json", '"interlock-scan/1"'),
                                  ("table", "policy.recognition_as_approval")):
        out = tmp_path / f"report.{report_format}"
        done = run("scan", "in", "--format", report_format, "--output", out, cwd=tmp_path)
        assert done.returncode == 1 and done.stdout == "" and str(out) in done.stderr
        assert marker in out.read_text()
    assert "\x1b[" not in (tmp_path / "report.table").read_text()  # no colour codes in a file


def test_an_unwritable_output_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(SAME_CHANNEL)
    done = run("scan", tmp_path / "p.yaml", "--output", tmp_path / "no" / "such" / "dir" / "r.json")
    assert done.returncode == 2 and "input.usage" in done.stderr


def test_policy_diff_end_to_end(tmp_path: Path) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(SEED.read_text())
    new.write_text(SEED.read_text().replace("quorum: 2", "quorum: 1"))
    same = run("policy", "diff", old, old)
    assert same.returncode == 0 and json.loads(same.stdout)["downgrades"] == []
    weaker = run("policy", "diff", old, new)
    assert weaker.returncode == 1
    body = json.loads(weaker.stdout)
    assert body["downgraded"] is True
    assert [(d["action"], d["kind"]) for d in body["downgrades"]] == [("payments.transfer", "quorum_lowered")]
    table = run("policy", "diff", old, new, "--format", "table")
    assert table.returncode == 1 and "quorum_lowered" in table.stdout and "1 downgrade" in table.stdout
    (tmp_path / "bad.yaml").write_text("version: 1\nrules: [{id: x}]\n")
    bad = run("policy", "diff", old, tmp_path / "bad.yaml")
    assert bad.returncode == 2 and json.loads(bad.stdout)["error"]["code"] == "policy.invalid"
    assert run("policy", "diff", old, tmp_path / "missing.yaml").returncode == 2
