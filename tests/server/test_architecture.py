"""DESIGN.md: routes translate HTTP <-> Gate calls; the server never talks to the store directly."""

from __future__ import annotations

from pathlib import Path

from unit.test_architecture import imports_of, module_of

SERVER = sorted((Path(__file__).resolve().parents[2] / "src" / "interlock" / "server").rglob("*.py"))


def test_the_server_never_imports_the_store() -> None:
    found = [f"{path.name}:{line} imports `{name}`" for path in SERVER
             for line, name in imports_of(path.read_text(), module_of(path)[1])
             if name == "interlock.store" or name.startswith("interlock.store.")]
    assert SERVER and found == []
