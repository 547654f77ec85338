"""Action requests, the action an executor is about to run, and the canonical action digest (RFC 8785)."""

from __future__ import annotations

import hashlib
from typing import Any, Literal, TypeVar

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from interlock.core import strict_json
from interlock.core.canonical import canonical_json
from interlock.core.errors import RequestError

# An id, resource or name: 1-256 characters, none of them a control character.
IDENTIFIER = r"^[^\x00-\x1f\x7f]{1,256}$"
ACTION_NAME = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
CHANNEL_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


PrincipalKind = Literal["human", "agent", "service", "integration"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Principal(_Frozen):
    """An identity: the requester, a delegator in its chain, or an approver."""

    id: str = Field(pattern=IDENTIFIER)
    kind: PrincipalKind
    attributes: dict[str, Any] = Field(default_factory=dict)

    def as_cel(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "attributes": self.attributes}


class ActionSpec(_Frozen):
    """Exactly what will run: the part of a request a grant is bound to."""

    action: str = Field(pattern=ACTION_NAME, max_length=256)
    resource: str = Field(pattern=IDENTIFIER)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _strict_json_values(cls, data: Any) -> Any:
        # However a request is built (parsed, from a dict, in code), its values obey the strict JSON limits.
        if isinstance(data, dict):
            strict_json.check_value(data)
        return data

    def digest(self) -> str:
        """SHA-256 (hex) over the RFC 8785 canonical JSON of `{action, resource, params}`."""
        return action_digest(self.action, self.resource, self.params)


class ActionRequest(ActionSpec):
    """A request to run an action, as a requester submits it."""

    principal: Principal
    on_behalf_of: tuple[Principal, ...] = ()
    channel: str = Field(pattern=CHANNEL_NAME)
    context: dict[str, Any] = Field(default_factory=dict)
    justification: str = Field(default="", max_length=4096)
    executor: str | None = Field(default=None, pattern=IDENTIFIER)

    def spec(self) -> ActionSpec:
        return ActionSpec(action=self.action, resource=self.resource, params=self.params)

    @property
    def delegator_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.on_behalf_of)


def action_digest(action: str, resource: str, params: dict[str, Any]) -> str:
    """SHA-256 (hex) over the RFC 8785 canonical JSON of `{action, resource, params}`."""
    try:
        canonical = canonical_json({"action": action, "resource": resource, "params": params})
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise RequestError("input.invalid", f"action cannot be canonicalized: {exc}") from None
    return hashlib.sha256(canonical).hexdigest()


_M = TypeVar("_M", bound=BaseModel)


def from_value(model: type[_M], value: Any) -> _M:
    """Validate a parsed JSON value as `model`; the first problem becomes `input.unknown_field` or `input.invalid`."""
    if not isinstance(value, dict):
        raise RequestError("input.invalid", f"expected a JSON object, got {type(value).__name__}")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "$"
        if first["type"] == "extra_forbidden":
            raise RequestError("input.unknown_field", f"unknown field `{where}`", field=where) from None
        message = str(first["msg"]).removeprefix("Value error, ")
        raise RequestError("input.invalid", f"`{where}`: {message}", field=where) from None


def parse_request(document: bytes | str | dict[str, Any]) -> ActionRequest:
    """Parse and validate an action request from strict JSON (or an already-parsed dict)."""
    value = document if isinstance(document, dict) else strict_json.parse(document, check=False)
    return from_value(ActionRequest, value)


def parse_action(document: bytes | str | dict[str, Any]) -> ActionSpec:
    """Parse and validate the `{action, resource, params}` an executor is about to run."""
    value = document if isinstance(document, dict) else strict_json.parse(document, check=False)
    return from_value(ActionSpec, value)
