"""`interlock demo`: plays `examples/seed/scenarios.yaml` on a fresh temporary home and checks every step."""

from __future__ import annotations

import datetime
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from interlock.core.durations import parse_duration
from interlock.core.errors import InterlockError
from interlock.enforce.guard import guard
from interlock.gate import Gate
from interlock.home import EXAMPLES, Home

SEED = EXAMPLES / "seed"


@dataclass
class _Clock:
    now: datetime.datetime

    def __call__(self) -> datetime.datetime:
        return self.now


@dataclass
class _Run:
    gate: Gate
    clock: _Clock
    folder: Path
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    grants: dict[str, str] = field(default_factory=dict)
    # The binding code each requester was given, and passes on to its approvers over their own channel.
    codes: dict[str, str | None] = field(default_factory=dict)

    def step(self, step: dict[str, Any]) -> str | None:
        """Perform one step; return the outcome or reason code it produced (None for set-up steps)."""
        if "advance" in step:
            self.clock.now += datetime.timedelta(seconds=parse_duration(step["advance"]))
        if "use_policy" in step:
            self.gate.policy = Home(self.folder, self.folder / step["use_policy"]).load_policy()
            return None
        try:
            return self._act(step)
        except InterlockError as refusal:
            return refusal.code

    def _act(self, step: dict[str, Any]) -> str | None:
        if "submit" in step:
            document = json.loads((self.folder / step["submit"]).read_text())
            document["params"] = {**document["params"], **step.get("change", {})}
            state = self.gate.submit(document)
            self.requests[step["name"]], self.ids[step["name"]] = document, state.request_id
            self.codes[step["name"]] = state.binding_code
            return self._remember(step["name"], state.outcome, state.grant)
        if "approve" in step:
            name = step["approve"]
            # A step may give another code (or none) than the one the requester passed on.
            code = step["binding_code"] if "binding_code" in step else self.codes.get(name)
            state = self.gate.decide_approval(self.ids[name], step["by"], step["channel"], binding_code=code)
            return self._remember(name, state.outcome, state.grant)
        if "consume" in step:
            name = step["consume"]
            document = self.requests[name]
            action = {"action": document["action"], "resource": document["resource"],
                      "params": {**document["params"], **step.get("change", {})}}
            self.gate.consume(self.grants.get(name, ""), step["executor"], action)
            return "consumed"
        if "execute" in step:
            return self._execute(step["execute"], without_grant=step.get("without_grant", False))
        return None

    def _execute(self, name: str, *, without_grant: bool) -> str:
        """Run the action through the Python guard, as the executor named by the policy would."""
        document = self.requests[name]
        executor = self.gate.policy.executor_for(document["action"]) or ""

        @guard(document["action"], executor=executor, gate=self.gate, resource=document["resource"])
        def execute(**params: Any) -> str:
            return "executed"

        grant = None if without_grant else self.grants.get(name)
        execute(**document["params"], **({"grant": grant} if grant else {}))
        return "consumed"

    def _remember(self, name: str, outcome: str, grant: str | None) -> str:
        if grant:
            self.grants[name] = grant
        return outcome


def run(console: Console | None = None) -> int:
    """Play every scenario; print a step table per scenario and the audit check; 0 if all behaved."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)
    plan = yaml.safe_load((SEED / "scenarios.yaml").read_text())
    start = datetime.datetime.fromisoformat(plan["start"].replace("Z", "+00:00"))
    failures = 0
    with tempfile.TemporaryDirectory(prefix="interlock-demo-") as tmp:
        home = Home(Path(tmp), SEED / "policy.yaml")
        gate = home.open_gate()
        clock = _Clock(start)
        gate.clock = clock
        demo = _Run(gate, clock, SEED)
        console.print(f"[bold]Interlock demo[/bold] — policy {home.policy_path}, store {home.store_path}")
        for scenario in plan["scenarios"]:
            table = Table(title=scenario["title"], title_justify="left", show_lines=False)
            for column in ("", "step", "expected", "got"):
                table.add_column(column)
            for step in scenario["steps"]:
                got = demo.step(step)
                expected = step.get("expect")
                ok = got == expected
                failures += not ok
                mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
                table.add_row(mark, step["say"], expected or "", got or "")
            console.print(table)
        gate.ledger.checkpoint()
        verification = gate.verify_audit()
        gate.store.close()
    if verification.ok:
        console.print(f"[green]✓[/green] audit log verifies: {verification.entries} entries, Merkle root"
                      f" {verification.root[:16]}…, signed checkpoint of {verification.signed}")
    else:
        failures += 1
        console.print(f"[red]✗ audit log does not verify:[/red] {verification.problems}")
    if failures:
        console.print(f"[red bold]{failures} step(s) did not behave as expected[/red bold]")
        return 1
    console.print("[bold green]All four scenarios were blocked, then executed properly.[/bold green]")
    return 0
