"""Request bodies: read with a size limit, parsed by the strict JSON parser, validated by a model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel

from interlock.core import strict_json
from interlock.core.action import from_value
from interlock.core.errors import RequestError

MAX_BODY_BYTES = strict_json.MAX_DOCUMENT_BYTES
M = TypeVar("M", bound=BaseModel)


def _too_large() -> RequestError:
    return RequestError("input.too_large", f"the body is over the {MAX_BODY_BYTES} byte limit")


@dataclass(frozen=True)
class Body:
    """A request body read up to the limit; parsed by `object()` or `model()`, on whichever thread runs them."""

    data: bytes | None  # None: the body passed the limit and was not read further

    def object(self) -> dict[str, Any]:
        """The body as a strict JSON object."""
        if self.data is None:
            raise _too_large()
        value = strict_json.parse(self.data)
        if not isinstance(value, dict):
            raise RequestError("input.invalid", f"expected a JSON object, got {type(value).__name__}")
        return value

    def model(self, model: type[M]) -> M:
        return from_value(model, self.object())


async def read_body(request: Request) -> Body:
    """The body, read until it passes the limit (a declared length over it is not read at all)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return Body(None)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return Body(None)
        chunks.append(chunk)
    return Body(b"".join(chunks))


async def read_object(request: Request) -> dict[str, Any]:
    """The body as a strict JSON object; refused before it is read in full once it passes the limit."""
    return (await read_body(request)).object()


async def read_model(request: Request, model: type[M]) -> M:
    return (await read_body(request)).model(model)
