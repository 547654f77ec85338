"""examples/agent_tools/run.py, the scripted agent loop with gated tools, exits 0 only if every step behaved."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .e2e_support import REPO, clean_env

EXAMPLE = REPO / "examples" / "agent_tools"


def play(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(folder / "run.py")], capture_output=True, text=True, timeout=120,
                          env=clean_env(), cwd=folder)


def test_the_agent_tools_example_plays_every_step_as_expected() -> None:
    done = play(EXAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✗" not in done.stdout
    assert "model calls lookup_balance({'account': 'treasury'}) -> ran" in done.stdout
    assert "approver user:alice approves req_" in done.stdout
    assert "exactly one payment ran" in done.stdout and "the audit log verifies" in done.stdout


def test_the_example_fails_when_a_step_misbehaves(tmp_path: Path) -> None:
    # A policy that lets every payment through: the held step runs at once, and the example must say so.
    shutil.copyfile(EXAMPLE / "run.py", tmp_path / "run.py")
    policy = (EXAMPLE / "policy.yaml").read_text().replace('when: "params.amount <= 100"', 'when: "true"') \
        .replace('when: "params.amount > 100"', 'when: "false"')
    (tmp_path / "policy.yaml").write_text(policy)
    done = play(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "✗ expected pending_approval; got ran" in done.stdout
