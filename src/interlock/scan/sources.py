"""Reading scan inputs safely: bounded size, no binaries, no symlink loops, YAML and JSON with line numbers.

Every parsed mapping is a `Mapped` (a dict that knows the line of each key) and every sequence a `Listed`
(a list that knows the line of each item), so a scanner can point at the line a finding is on. YAML is read
with the YAML 1.2 booleans only: `on:` in a GitHub workflow stays the string "on", not True.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from interlock.scan.findings import FileProblem

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ALIASES = 1000  # a "billion laughs" document expands through aliases; real configuration uses few
# A few aliases of aliases expand to billions of nodes (9 levels of 9 make 9^9): bound the expanded size, which
# is what a scanner walking the document would traverse.
MAX_EXPANDED_NODES = 1_000_000
CANDIDATE_SUFFIXES = (".yml", ".yaml", ".json", ".sarif", ".py")
SKIPPED_DIRECTORIES = frozenset({".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox"})
Syntax = Literal["yaml", "json", "python", "text"]


class Mapped(dict[Any, Any]):
    """A parsed mapping that remembers where it and each of its keys are (1-based lines)."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class Listed(list[Any]):
    """A parsed sequence that remembers where it and each of its items are (1-based lines)."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


def line_of(value: Any, default: int | None = None) -> int | None:
    """The line a parsed mapping or sequence starts on; `default` for scalars and unlined values."""
    return getattr(value, "line", None) or default


class ParseError(Exception):
    """The file is not valid YAML/JSON (message names the line)."""


@dataclass
class Source:
    """One input file: its text, and its parsed documents once asked for (parsed at most once)."""

    path: Path
    display: str
    text: str
    _documents: tuple[Any, ...] | None = field(default=None, repr=False)
    _error: str | None = field(default=None, repr=False)

    @property
    def syntax(self) -> Syntax:
        suffix = self.path.suffix.lower()
        if suffix == ".py" or (suffix == "" and self.text.startswith("#!") and "python" in self.text.split("\n", 1)[0]):
            return "python"
        if suffix in (".json", ".sarif"):
            return "json"
        if suffix in (".yml", ".yaml"):
            return "yaml"
        return "text"

    def documents(self) -> tuple[Any, ...]:
        """The YAML/JSON documents of the file (a YAML stream may hold several). Raises `ParseError`."""
        if self._documents is None and self._error is None:
            try:
                if self.path.suffix.lower() == ".sarif":
                    # SARIF carries its own line numbers, and a log of megabytes takes the line-numbering YAML
                    # reader seconds: read as plain JSON (every line is 1).
                    self._documents = (_json_with_lines(self.text),)
                else:
                    self._documents = _parse(self.text, self.syntax)
            except ParseError as exc:
                self._error = str(exc)
        if self._error is not None:
            raise ParseError(self._error)
        assert self._documents is not None
        return self._documents

    def first_mapping(self) -> Mapped | None:
        """The first document when it is a mapping (what most formats are); None if not, or unparseable."""
        try:
            documents = self.documents()
        except ParseError:
            return None
        return documents[0] if documents and isinstance(documents[0], Mapped) else None


def _parse(text: str, syntax: Syntax) -> tuple[Any, ...]:
    if syntax == "python":
        return ()
    try:
        loader = _LineLoader(text)
        try:
            documents = []
            while loader.check_data():
                documents.append(loader.get_data())
            return tuple(documents)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        if syntax == "json":
            return (_json_with_lines(text),)
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ParseError(f"{where}{getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise ParseError("nested too deeply") from None


def _json_with_lines(text: str) -> Any:
    """JSON parsed as JSON, without lines: SARIF logs, and JSON that YAML 1.1 will not read (tabs, some escapes)."""
    try:
        return _lined(json.loads(text), 1)
    except (ValueError, RecursionError) as exc:
        raise ParseError(str(exc)) from None


def _lined(value: Any, line: int) -> Any:
    if isinstance(value, dict):
        mapped = Mapped((key, _lined(item, line)) for key, item in value.items())
        mapped.line, mapped.key_lines = line, {}
        return mapped
    if isinstance(value, list):
        listed = Listed(_lined(item, line) for item in value)
        listed.line, listed.item_lines = line, [line] * len(value)
        return listed
    return value


if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:  # libyaml's C parser where present: the same nodes and marks, about ten times faster
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):
    """SafeLoader with line numbers, YAML 1.2 booleans, and a bound on aliases.

    Aliases are bounded by what they expand to, checked on the composed node graph before anything is built.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        if _aliases(node, set()) > MAX_ALIASES or _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise yaml.YAMLError(f"the document expands through aliases to more than {MAX_EXPANDED_NODES} nodes"
                                 f" or uses more than {MAX_ALIASES} aliases")
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Mapped:  # type: ignore[override]
        self.flatten_mapping(node)
        mapped = Mapped()
        mapped.line, mapped.key_lines = node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key that is not a scalar", key_node.start_mark) from None
            mapped[key] = self.construct_object(value_node, deep=True)
            mapped.key_lines[key] = key_node.start_mark.line + 1
        return mapped

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> Listed:  # type: ignore[override]
        listed = Listed(self.construct_object(child, deep=True) for child in node.value)
        listed.line, listed.item_lines = node.start_mark.line + 1, [child.start_mark.line + 1 for child in node.value]
        return listed

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        # A date-shaped scalar that is no date (2025-02-30) raises ValueError, not a YAMLError: say where.
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"`{node.value}` is not a valid date", node.start_mark) from None


def _aliases(node: yaml.Node, seen: set[int]) -> int:
    """References to a node met before: each is an alias (or a merge key's reuse) in the document."""
    if id(node) in seen:
        return 1
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        return sum(_aliases(child, seen) for child in node.value)
    if isinstance(node, yaml.MappingNode):
        return sum(_aliases(key, seen) + _aliases(value, seen) for key, value in node.value)
    return 0


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes in the document with every alias expanded; each distinct node is counted once (memoised by id)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a recursive alias (a node inside itself) counts once instead of looping
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(key, sizes) + _expanded_size(value, sizes) for key, value in node.value)
    sizes[id(node)] = size
    return size


_LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _LineLoader.construct_sequence)
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _LineLoader.construct_yaml_timestamp)
# YAML 1.2 core schema booleans only (YAML 1.1 also reads on/off/yes/no/y/n as booleans).
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _LineLoader.yaml_implicit_resolvers.setdefault(_first, []).insert(
        0, ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")))


# --- finding and reading the files ------------------------------------------------------------------


def read_sources(paths: list[Path], problems: list[FileProblem]) -> Iterator[tuple[Source, bool]]:
    """Every readable input under `paths`, with whether it was named explicitly (not found by walking).

    Directories are walked (symlinks followed, each real directory once; a loop is a problem, not a hang);
    only files with a candidate suffix are taken from a walk. A file that cannot be read is a problem and
    the walk goes on.
    """
    seen: set[str] = set()
    for given in paths:
        if given.is_dir():
            root = given
            for path in _walk(given, problems):
                source = _read(path, _display(path, root), problems, seen)
                if source is not None:
                    yield source, False
        elif given.exists():
            source = _read(given, str(given), problems, seen)
            if source is not None:
                yield source, True
        else:
            problems.append(FileProblem(str(given), "scan.not_found", f"`{given}` does not exist"))


def _walk(root: Path, problems: list[FileProblem]) -> Iterator[Path]:
    visited: set[str] = set()
    stack = [root]
    while stack:
        directory = stack.pop()
        real = os.path.realpath(directory)
        if real in visited:
            problems.append(FileProblem(str(directory), "scan.symlink_loop",
                                        f"`{directory}` leads back to a directory already scanned; not entered again"))
            continue
        visited.add(real)
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError as exc:
            problems.append(FileProblem(str(directory), "scan.unreadable", f"cannot list: {exc.strerror}"))
            continue
        subdirectories = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=True):
                    if entry.name not in SKIPPED_DIRECTORIES:
                        subdirectories.append(Path(entry.path))
                elif entry.name.lower().endswith(CANDIDATE_SUFFIXES):
                    yield Path(entry.path)
            except OSError as exc:
                problems.append(FileProblem(entry.path, "scan.unreadable", f"cannot stat: {exc.strerror}"))
        stack.extend(reversed(subdirectories))


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) if root != path else str(path)
    except ValueError:
        return str(path)


def _read(path: Path, display: str, problems: list[FileProblem], seen: set[str]) -> Source | None:
    real = os.path.realpath(path)
    if real in seen:
        return None
    seen.add(real)
    try:
        if not os.path.isfile(real):
            problems.append(FileProblem(display, "scan.not_a_file", "not a regular file (a dangling link, a device?)"))
            return None
        size = os.path.getsize(real)
        if size > MAX_FILE_BYTES:
            problems.append(FileProblem(display, "scan.too_large",
                                        f"{size} bytes, over the {MAX_FILE_BYTES} byte limit per file"))
            return None
        with open(real, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        problems.append(FileProblem(display, "scan.unreadable", f"cannot read: {exc.strerror}"))
        return None
    if b"\x00" in data[:8192]:
        problems.append(FileProblem(display, "scan.binary", "a binary file (it holds NUL bytes)"))
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(FileProblem(display, "scan.not_utf8", f"not UTF-8 text (byte {exc.start})"))
        return None
    return Source(path=path, display=display, text=text)
