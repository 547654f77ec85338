"""The HTTP enforcing proxy as real processes: `interlock proxy` in front of the example payments API
(examples/no_direct_path), which records every call it receives and trusts only execution tokens."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from .e2e_support import REPO, clean_env
from .served import cli, free_port, running

EXAMPLE = REPO / "examples" / "no_direct_path"
REQUESTER = "service:billing-batch"


@dataclass(frozen=True)
class Deployment:
    home: Path
    proxy: str  # base URL of `interlock proxy`
    upstream: str  # base URL of the payments API, reachable directly (to show it refuses)
    record: Path
    since: int = 0  # calls recorded before this view was taken are not its own

    def calls(self) -> list[dict[str, Any]]:
        """Every call the upstream received since this view was taken, in order."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()[self.since:]]

    def fresh(self) -> Deployment:
        """The same processes, seeing only the calls that come from now on."""
        return replace(self, since=self.since + len(self.calls()))

    def executed(self) -> list[dict[str, Any]]:
        return [call for call in self.calls() if "executed" in call]


def home_with_example_policy(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(EXAMPLE / "policy.yaml", home / "policy.yaml")
    return home


def proxy_config(tmp_path: Path, upstream_port: int, **changes: Any) -> Path:
    """The example's proxy.yaml pointed at `upstream_port`, with `changes` applied; its key lives in tmp_path."""
    config = yaml.safe_load((EXAMPLE / "proxy.yaml").read_text())
    config.update(upstream=f"http://127.0.0.1:{upstream_port}", **changes)
    path = tmp_path / "proxy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def deployed(tmp_path: Path, *, home: Path | None = None, **changes: Any) -> Iterator[Deployment]:
    """The payments API and `interlock proxy` in front of it, on a local home with the example policy."""
    home = home or home_with_example_policy(tmp_path)
    upstream_port, proxy_port = free_port(), free_port()
    config = proxy_config(tmp_path, upstream_port, **changes)
    jwks = tmp_path / "proxy-jwks.json"
    jwks.write_text(json.dumps(cli(home, "proxy", "--config", str(config), "--print-jwks")))
    record = tmp_path / "upstream-calls.jsonl"
    upstream = f"http://127.0.0.1:{upstream_port}"
    proxy = f"http://127.0.0.1:{proxy_port}"
    with running([sys.executable, str(EXAMPLE / "payments_api.py"), "--port", str(upstream_port),
                  "--jwks", str(jwks), "--record", str(record)], f"{upstream}/health", clean_env(), "payments API"), \
         running([sys.executable, "-m", "interlock.cli", "proxy", "--config", str(config), "--port", str(proxy_port)],
                 f"{proxy}/health", clean_env(INTERLOCK_HOME=str(home)), "interlock proxy"):
        yield Deployment(home, proxy, upstream, record)


def transfer_request(account: str, body: dict[str, Any], query: dict[str, str] | None = None) -> dict[str, Any]:
    """The action request the proxy makes of `POST /payments/{account}` with a JSON body."""
    return {
        "principal": {"id": REQUESTER, "kind": "service"},
        "action": "payments.transfer", "resource": f"account:{account}",
        "params": {"path": {"account": account}, "query": query or {}, "body": body},
        "channel": "api", "executor": "http-proxy",
    }
