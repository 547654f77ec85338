"""The layering of DESIGN.md, checked: core is pure (no I/O, no clock), audit imports only core."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
CORE_MODULES = sorted((SRC / "interlock" / "core").rglob("*.py"))
AUDIT_MODULES = sorted((SRC / "interlock" / "audit").rglob("*.py"))

CORE_THIRD_PARTY = frozenset({"pydantic", "yaml", "rfc8785", "cel_expr_python"})
AUDIT_THIRD_PARTY = frozenset({"rfc8785", "cryptography"})  # cryptography: Ed25519 of signed notes
# Standard-library modules that reach the outside world, the wall clock or randomness: core takes values.
CORE_FORBIDDEN_STDLIB = frozenset({
    "sqlite3", "socket", "http", "urllib", "os", "time", "pathlib", "subprocess", "shutil", "io", "tempfile",
    "random", "secrets", "uuid", "threading", "asyncio", "ssl", "select", "importlib",
})


def module_of(path: Path, root: Path = SRC) -> tuple[str, str]:
    """(module name, the package relative imports start from)."""
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        name = ".".join(parts[:-1])
        return name, name
    name = ".".join(parts)
    return name, name.rpartition(".")[0]


def imports_of(source: str, package: str) -> list[tuple[int, str]]:
    """Every absolute module name a source imports (relative imports resolved), with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            if node.module is None or target == "interlock":
                # `from interlock import gate` and `from .. import store` name modules, not only packages.
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            found.append((node.lineno, "__import__"))
    return found


def violations(paths: list[Path], own: tuple[str, ...], third_party: frozenset[str],
               forbidden_stdlib: frozenset[str] = frozenset(), root: Path = SRC) -> list[str]:
    problems: list[str] = []
    for path in paths:
        _, package = module_of(path, root)
        for line, name in imports_of(path.read_text(), package):
            top = name.split(".")[0]
            where = f"{path.relative_to(root)}:{line} imports `{name}`"
            if name == "__import__":
                problems.append(f"{where} (a dynamic import hides a dependency)")
            elif top == "interlock":
                inside = any(name == p or name.startswith(p + ".") for p in own)
                if name != "interlock" and not inside:
                    problems.append(f"{where} (only {', '.join(own)} allowed)")
            elif top in sys.stdlib_module_names:
                if top in forbidden_stdlib:
                    problems.append(f"{where} (I/O, clock or randomness in a pure layer)")
            elif top != "__future__" and top not in third_party:
                problems.append(f"{where} (third-party module not allowed here)")
    return problems


def test_the_layers_exist() -> None:
    names = {p.name for p in CORE_MODULES}
    assert {"strict_json.py", "action.py", "conditions.py", "policy.py", "decision.py", "approval.py",
            "grant.py"} <= names
    assert {"log.py", "merkle.py", "checkpoint.py", "export.py"} <= {p.name for p in AUDIT_MODULES}


def test_core_imports_only_itself_the_stdlib_and_its_pure_dependencies() -> None:
    assert violations(CORE_MODULES, ("interlock.core",), CORE_THIRD_PARTY, CORE_FORBIDDEN_STDLIB) == []


def test_audit_imports_only_core_itself_the_stdlib_and_its_pure_dependencies() -> None:
    assert violations(AUDIT_MODULES, ("interlock.core", "interlock.audit"), AUDIT_THIRD_PARTY) == []


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: p.name)
def test_core_never_reads_the_clock(path: Path) -> None:
    calls = re.findall(r"\.(now|utcnow|today|time|monotonic|perf_counter)\(", path.read_text())
    assert calls == [], f"{path.name} reads the clock; pass `now` in instead"


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: p.name)
def test_core_opens_no_files(path: Path) -> None:
    opened = [node.lineno for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("open", "input")]
    assert opened == [], f"{path.name} does I/O at lines {opened}"


# Loaded by no command at start: each command imports its own heavy parts when it runs, so `interlock serve`
# (restarted dozens of times by tests/e2e/test_crash.py) and every short CLI call start without them.
CLI_START_UNNEEDED = ("mcp", "aiohttp", "jsonschema", "rich", "httpx", "interlock.scan", "interlock.enforce",
                      "interlock.client")


def loaded_by(statement: str, names: tuple[str, ...]) -> list[str]:
    """Which of `names` (modules, with their submodules) a fresh interpreter has loaded after `statement`."""
    probe = (f"import sys\n{statement}\nprint(*[name for name in {names!r}"
             " if any(m == name or m.startswith(name + '.') for m in sys.modules)])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.split()


def test_importing_the_cli_loads_no_module_that_a_command_imports_for_itself() -> None:
    assert loaded_by("import interlock.cli", CLI_START_UNNEEDED) == []


def test_the_public_api_loads_the_enforcement_helpers_on_first_use() -> None:
    assert loaded_by("import interlock", ("interlock.enforce",)) == []
    used = "from interlock import Gate, Home, gated_tool, guard\nassert callable(gated_tool) and callable(guard)"
    assert loaded_by(used, ("interlock.enforce", "rich")) == ["interlock.enforce"]


# --- the checker must be able to fail -------------------------------------------------------------


def test_the_checker_reports_each_kind_of_breach(tmp_path: Path) -> None:
    core = tmp_path / "interlock" / "core"
    core.mkdir(parents=True)
    bad = core / "bad.py"
    bad.write_text(
        "import os.path\nimport requests\nfrom interlock.gate import Gate\nfrom interlock import keys\n"
        "from ..store import sqlite\nfrom . import errors\nfrom .policy import Policy\nimport json\nimport yaml\n"
        "__import__('socket')\n"
    )
    problems = violations([bad], ("interlock.core",), CORE_THIRD_PARTY, CORE_FORBIDDEN_STDLIB, root=tmp_path)
    flagged = {re.search(r"imports `([^`]+)`", p).group(1) for p in problems}  # type: ignore[union-attr]
    assert flagged == {"os.path", "requests", "interlock.gate", "interlock.keys", "interlock.store", "__import__"}


def test_the_audit_rules_refuse_what_core_may_use(tmp_path: Path) -> None:
    audit = tmp_path / "interlock" / "audit"
    audit.mkdir(parents=True)
    bad = audit / "bad.py"
    bad.write_text("import yaml\nfrom interlock.store.base import Store\nfrom interlock.core import strict_json\n")
    problems = violations([bad], ("interlock.core", "interlock.audit"), AUDIT_THIRD_PARTY, root=tmp_path)
    assert len(problems) == 2
    assert any("`yaml`" in p for p in problems)
    assert any("`interlock.store.base`" in p for p in problems)


def test_the_clock_pattern_finds_a_now_call() -> None:
    assert re.findall(r"\.(now|utcnow|today|time|monotonic|perf_counter)\(", "x = datetime.datetime.now(UTC)")
