"""`interlock demo` plays the four seed scenarios and exits 0 only if every step behaved."""

from __future__ import annotations

import subprocess
import sys


def test_demo_plays_all_four_scenarios_and_verifies_the_audit_log() -> None:
    done = subprocess.run([sys.executable, "-m", "interlock.cli", "demo"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for title in ("1. An AI agent", "2. A pipeline", "3. An operator", "4. An integration"):
        assert title in done.stdout
    assert "audit log verifies" in done.stdout
    assert "✗" not in done.stdout
