"""The engine and safe input reading: bad files are reported one by one and the scan goes on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from interlock.scan import engine, sources
from interlock.scan.findings import Finding, Location, Rule
from interlock.scan.policies import PolicyScanner
from interlock.scan.sources import Mapped, Source

POLICY = """\
version: 1
sensitive: ["payments.*"]
rules:
  - id: cfo-pays
    action: payments.transfer
    when: "principal.id == 'user:cfo'"
    effect: allow
"""
PROBE = Rule(id="probe.seen", title="seen", severity="low", why="test", fix="none")


class Probe:
    """Recognises YAML mappings with a `probe` key; reports one finding per file at the key's line."""

    kind = "probe"

    def recognizes(self, source: Source) -> bool:
        document = source.first_mapping()
        return document is not None and "probe" in document

    def scan(self, source: Source) -> list[Finding]:
        document = source.first_mapping()
        assert document is not None
        return [Finding(PROBE, Location(source.display, document.line_of("probe")), repr(document["probe"]))]


def codes(result: engine.ScanResult) -> dict[str, str]:
    return {problem.path: problem.code for problem in result.problems}


def test_each_bad_file_is_a_problem_and_the_walk_goes_on(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("probe: 1\n")
    (tmp_path / "binary.yaml").write_bytes(b"probe: 1\n\x00\x01\x02")
    (tmp_path / "latin1.yaml").write_bytes("probe: caf\xe9\n".encode("latin-1"))
    (tmp_path / "broken.yaml").write_text("probe: [1, 2\n")
    (tmp_path / "huge.json").write_bytes(b" " * (sources.MAX_FILE_BYTES + 1))
    (tmp_path / "notes.txt").write_text("probe: 1\n")  # not a candidate suffix: never read in a walk
    result = engine.scan([tmp_path], [Probe()])
    assert codes(result) == {"binary.yaml": "scan.binary", "latin1.yaml": "scan.not_utf8",
                             "broken.yaml": "scan.unparseable", "huge.json": "scan.too_large"}
    assert [f.location for f in result.findings] == [Location("good.yaml", 1)]
    assert result.scanned == {"probe": 1}
    assert "line 2" in next(p.message for p in result.problems if p.code == "scan.unparseable")


def test_a_symlink_loop_is_reported_once_not_followed_forever(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.yaml").write_text("probe: 1\n")
    os.symlink(tmp_path, tmp_path / "sub" / "back")
    result = engine.scan([tmp_path], [Probe()])
    assert [p.code for p in result.problems] == ["scan.symlink_loop"]
    assert len(result.findings) == 1


def test_unknown_format_is_a_problem_when_named_and_skipped_when_walked(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("name: not scanned by anyone\n")
    walked = engine.scan([tmp_path], [Probe()])
    assert walked.problems == [] and walked.skipped == 1
    named = engine.scan([other], [Probe()])
    assert codes(named) == {str(other): "scan.unknown_format"} and named.skipped == 0


def test_a_missing_path_is_a_problem(tmp_path: Path) -> None:
    result = engine.scan([tmp_path / "nowhere.yaml"], [Probe()])
    assert [p.code for p in result.problems] == ["scan.not_found"]


def test_a_yaml_alias_bomb_is_refused_not_expanded(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{n}: &a{n} [{','.join(f'*a{n - 1}' for _ in range(9))}]" for n in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("probe: 1\n" + "\n".join(lines) + "\n")
    result = engine.scan([bomb], [Probe()])
    assert codes(result) == {str(bomb): "scan.unparseable"}
    assert "aliases" in result.problems[0].message


def test_on_stays_a_string_key_in_yaml_1_2(tmp_path: Path) -> None:
    workflow = tmp_path / "ci.yml"
    workflow.write_text("on:\n  push: {}\nyes: no\nflag: true\n")
    source = Source(workflow, "ci.yml", workflow.read_text())
    document = source.first_mapping()
    assert isinstance(document, Mapped)
    assert list(document) == ["on", "yes", "flag"] and document["yes"] == "no" and document["flag"] is True
    assert document.line_of("on") == 1 and document["on"].line_of("push") == 2


def test_the_engine_remembers_where_each_file_was_read(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "p.yaml").write_text("probe: 1\n")
    result = engine.scan([tmp_path / "dir"], [Probe()])
    assert result.paths == {"p.yaml": tmp_path / "dir" / "p.yaml"}


def test_an_invalid_interlock_policy_is_unparseable_with_the_gates_message(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("effect: allow", "effect: allow\n    approval: {approvers: [x]}"))
    result = engine.scan([policy], [PolicyScanner()])
    assert codes(result) == {str(policy): "scan.unparseable"}
    assert "approval` only goes with require_approval" in result.problems[0].message


def test_the_default_scanners_include_the_policy_scanner(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    result = engine.scan([tmp_path])
    assert result.scanned == {"interlock-policy": 1}
    assert [f.rule.id for f in result.findings] == ["policy.recognition_as_approval"]


@pytest.mark.parametrize("text", [
    "version: 1\nrules: []\n",
    "version: 1\nsensitive: []\nrules:\n  - {id: a, action: x, effect: deny}\n",
])
def test_policies_are_recognised_by_content(tmp_path: Path, text: str) -> None:
    path = tmp_path / "anything.yml"
    path.write_text(text)
    assert PolicyScanner().recognizes(Source(path, "anything.yml", text))


@pytest.mark.parametrize("text", [
    "version: 2\nrules: []\n",
    "version: true\nrules: []\n",  # YAML 1.2 true is not 1, though Python says True == 1
    "version: 1\nrules: {}\n",
    "version: 1\nrules: []\nidentities: []\n",
    "version: 1\nrules:\n  - apiGroups: ['']\n    verbs: [get]\n",  # a Kubernetes Role's rules
    "Version: '2012-10-17'\nStatement: []\n",
])
def test_other_documents_are_not_taken_for_policies(tmp_path: Path, text: str) -> None:
    path = tmp_path / "anything.yml"
    path.write_text(text)
    assert not PolicyScanner().recognizes(Source(path, "anything.yml", text))


def test_a_scanner_that_fails_on_one_file_is_reported_and_the_scan_goes_on(tmp_path: Path) -> None:
    class Broken:
        kind = "broken"

        def recognizes(self, source: Source) -> bool:
            return source.path.name.startswith("broken")

        def scan(self, source: Source) -> list[Finding]:
            raise KeyError("a bug")

    class Fine:
        kind = "fine"

        def recognizes(self, source: Source) -> bool:
            return True

        def scan(self, source: Source) -> list[Finding]:
            return []

    (tmp_path / "broken.yaml").write_text("a: 1\n")
    (tmp_path / "fine.yaml").write_text("b: 2\n")
    result = engine.scan([tmp_path], [Broken(), Fine()])
    assert [(p.path, p.code) for p in result.problems] == [("broken.yaml", "scan.scanner_failed")]
    assert result.scanned == {"fine": 1}
