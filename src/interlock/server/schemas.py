"""The API's bodies and responses as pydantic models: validation of what comes in, and the OpenAPI schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from interlock.core.action import ACTION_NAME, CHANNEL_NAME, IDENTIFIER, Principal


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClaimedPrincipal(_Body):
    """The caller may name itself; it must match its credential, kind and attributes included."""

    id: str
    kind: str | None = None
    attributes: dict[str, Any] | None = None


class SubmitBody(_Body):
    """An action request; `principal` comes from the caller's credential and may be omitted."""

    principal: ClaimedPrincipal | None = None
    on_behalf_of: list[Principal] = Field(default_factory=list, description="the delegation chain, outermost first")
    action: str = Field(pattern=ACTION_NAME, max_length=256)
    resource: str = Field(pattern=IDENTIFIER)
    params: dict[str, Any] = Field(default_factory=dict)
    channel: str = Field(default="api", pattern=CHANNEL_NAME,
                         description="how the request reached the requester (e.g. `chat`)")
    context: dict[str, Any] = Field(default_factory=dict)
    justification: str = ""
    executor: str | None = None


class ApprovalBody(_Body):
    """An approver's decision; the channel is the one the approver authenticated on (`api`), never a field."""

    decision: Literal["approve", "reject"]
    comment: str = Field(default="", max_length=4096)
    binding_code: str | None = Field(
        default=None, max_length=64,
        description="the request's binding code (e.g. `K7M-Q2P`), as the requester was given it; needed to"
                    " approve a sensitive action; case, dashes and spaces are ignored")


class BreakGlassBody(_Body):
    """Proceed alone under a policy `break_glass` entry; the justification is recorded and sent to every group."""

    justification: str = Field(min_length=1, max_length=4096)
    binding_code: str | None = Field(
        default=None, max_length=64,
        description="the request's binding code (e.g. `K7M-Q2P`), as the requester was given it; needed to"
                    " break the glass on a sensitive action; case, dashes and spaces are ignored")


class ReviewBody(_Body):
    """A post-hoc sign-off of a break-glass use."""

    comment: str = Field(default="", max_length=4096)


class ConsumeBody(_Body):
    """A grant and exactly the action the executor (the caller) is about to run."""

    grant: str = Field(max_length=16384)
    executor: str | None = Field(default=None, description="defaults to the caller; any other value is refused")
    action: str = Field(pattern=ACTION_NAME, max_length=256)
    resource: str = Field(pattern=IDENTIFIER)
    params: dict[str, Any] = Field(default_factory=dict)


class ResultBody(_Body):
    result: Literal["succeeded", "failed"]
    detail: str = Field(default="", max_length=4096)


class ErrorDetail(BaseModel):
    code: str = Field(description="a stable reason code, e.g. `grant.already_used`")
    message: str
    detail: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApprovalProgress(BaseModel):
    requirements: list[dict[str, Any]]
    progress: list[dict[str, Any]]
    expires_at: str | None
    binding_code: str | None = Field(default=None, description="tell it to the approver over your own channel")
    binding_code_required: bool = Field(default=False, description="approving needs the binding code typed")


class RequestStateBody(BaseModel):
    request_id: str
    outcome: Literal["allowed", "denied", "pending_approval", "approved", "rejected", "expired"]
    reasons: list[str]
    explanation: str
    digest: str
    policy_version: str
    grant: str | None = Field(
        default=None, description="for the requester only: present while an issued grant is unconsumed; never sent"
                                  " to an approver or an admin")
    approval: ApprovalProgress | None = None
    approvals: list[dict[str, Any]] | None = None
    consumed: bool | None = None
    result: str | None = None


class ConsumptionBody(BaseModel):
    consumed: Literal[True]
    jti: str
    request_id: str
    executor: str
    action: str
    digest: str


class ResultRecordBody(BaseModel):
    jti: str
    request_id: str
    result: str
    detail: str | None


class VerificationBody(BaseModel):
    ok: bool
    entries: int
    root: str = Field(description="Merkle tree head (hex) of the entries as stored")
    signed: int = Field(description="size of the newest signed checkpoint the log matches")
    problems: list[str]


class LogKeyBody(BaseModel):
    origin: str
    public_key: str = Field(description="C2SP signed-note verifier key: name+keyid+base64(0x01 || Ed25519 key)")


class InclusionProofBody(BaseModel):
    index: int
    size: int
    leaf_hash: str
    proof: list[str] = Field(description="RFC 9162 inclusion proof, hex hashes")
    leaf: str = Field(description="the entry as stored: its bytes are the Merkle leaf")


class ConsistencyProofBody(BaseModel):
    from_: int = Field(alias="from")
    to: int
    proof: list[str] = Field(description="RFC 9162 consistency proof, hex hashes")


class HealthBody(BaseModel):
    status: str


BODY_MODELS: tuple[type[BaseModel], ...] = (SubmitBody, ApprovalBody, BreakGlassBody, ReviewBody, ConsumeBody,
                                          ResultBody)


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads `model` through the strict parser rather than FastAPI's."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}
