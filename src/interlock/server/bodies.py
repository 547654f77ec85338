"""Request bodies: read with a size limit, parsed by the strict JSON parser, validated by a model."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel

from interlock.core import strict_json
from interlock.core.action import from_value
from interlock.core.errors import RequestError

MAX_BODY_BYTES = strict_json.MAX_DOCUMENT_BYTES
M = TypeVar("M", bound=BaseModel)


def _too_large(limit: int) -> RequestError:
    return RequestError("input.too_large", f"the body is over the {limit} byte limit")


async def read_bytes(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused (`input.too_large`) before it is read in full once it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_object(request: Request) -> dict[str, Any]:
    """The body as a strict JSON object; refused before it is read in full once it passes the limit."""
    value = strict_json.parse(await read_bytes(request))
    if not isinstance(value, dict):
        raise RequestError("input.invalid", f"expected a JSON object, got {type(value).__name__}")
    return value


async def read_model(request: Request, model: type[M]) -> M:
    return from_value(model, await read_object(request))
