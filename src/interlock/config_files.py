"""Configuration files (YAML) read into frozen pydantic models: duplicate keys refused, every problem one
`input.*` refusal that names the file's kind and where in it (the line of a YAML error, the field's path)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel

from interlock.core.action import from_value
from interlock.core.errors import RequestError
from interlock.core.policy import _UniqueKeyLoader

M = TypeVar("M", bound=BaseModel)


def load_model(text: str | bytes, model: type[M], what: str, expected: str) -> M:
    """`what` names the file in messages ("proxy config"); `expected` says what its top level must be."""
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise RequestError("input.invalid", f"{what}: YAML error{where}: "
                                            f"{getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(document, dict):
        raise RequestError("input.invalid", f"{what}: {expected}")
    try:
        return from_value(model, document)
    except RequestError as refused:
        raise RequestError(refused.code, f"{what}: {refused.message}", **refused.detail) from None


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RequestError("input.unreadable", f"cannot read {path}: {exc.strerror}") from None
