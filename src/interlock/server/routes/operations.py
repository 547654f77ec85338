"""Keys, audit and health: jwks, the audit log's verification, checkpoints and proofs, `/healthz`, `/readyz`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from interlock.core.errors import AuditError
from interlock.credentials import Identity
from interlock.server.auth import caller, gate_of
from interlock.server.schemas import (
    ConsistencyProofBody,
    HealthBody,
    InclusionProofBody,
    LogKeyBody,
    VerificationBody,
    refusals,
)

router = APIRouter(tags=["operations"])


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> dict[str, Any]:
    """The grant verification keys as an RFC 7517 JWK Set."""
    return gate_of(request).keys.jwks()


@router.get("/v1/audit/verify", response_model=VerificationBody, responses=refusals(401, 403, 503))
async def audit_verify(request: Request, _admin: Annotated[Identity, Depends(caller("admin"))]) -> dict[str, Any]:
    """Recompute the audit log's hashes; `ok` is false and `problems` names each entry that does not verify."""
    verification = await run_in_threadpool(gate_of(request).verify_audit)
    return verification.to_json()


@router.get("/v1/audit/public-key", response_model=LogKeyBody, responses=refusals(503))
async def audit_public_key(request: Request) -> dict[str, str]:
    """The log's origin and the C2SP verifier key its checkpoints are signed with (public, like the JWKS)."""
    ledger = gate_of(request).ledger
    key = await run_in_threadpool(ledger.key)
    return {"origin": key.name, "public_key": key.encode()}


@router.get("/v1/audit/checkpoint", response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {}}}, **refusals(404, 503)})
async def audit_checkpoint(request: Request) -> PlainTextResponse:
    """The newest signed checkpoint: a C2SP tlog-checkpoint signed note (public: it holds sizes and hashes only)."""
    latest = await run_in_threadpool(gate_of(request).ledger.latest)
    if latest is None:
        raise AuditError("audit.no_checkpoint", "the log has no signed checkpoint yet")
    return PlainTextResponse(latest.note)


@router.get("/v1/audit/entries/{index}/proof", response_model=InclusionProofBody,
            responses=refusals(400, 401, 403, 404, 503))
async def audit_inclusion_proof(
    request: Request, _admin: Annotated[Identity, Depends(caller("admin"))],
    index: Annotated[int, Path(ge=0, le=2**62)],
    size: Annotated[int | None, Query(ge=1, le=2**62, description="a checkpoint's size [default: newest]")] = None,
) -> dict[str, Any]:
    """The RFC 9162 inclusion proof of entry `index` in the tree a checkpoint signed, with the entry itself."""
    ledger = gate_of(request).ledger
    proof = await run_in_threadpool(ledger.inclusion_proof, index, size)
    leaf = await run_in_threadpool(ledger.entry, index)
    return {**proof, "leaf": leaf.decode()}


@router.get("/v1/audit/consistency", response_model=ConsistencyProofBody, responses=refusals(400, 404, 503))
async def audit_consistency_proof(
    request: Request,
    old_size: Annotated[int, Query(alias="from", ge=0, le=2**62)],
    new_size: Annotated[int | None, Query(alias="to", ge=1, le=2**62,
                                          description="a checkpoint's size [default: newest]")] = None,
) -> dict[str, Any]:
    """The RFC 9162 consistency proof between two tree sizes (public: hashes only), for witnesses and auditors."""
    return await run_in_threadpool(gate_of(request).ledger.consistency_proof, old_size, new_size)


@router.get("/healthz", response_model=HealthBody)
async def healthz() -> dict[str, str]:
    """Live: 200 while the process runs."""
    return {"status": "ok"}


@router.get("/readyz", response_model=HealthBody, responses=refusals(503))
async def readyz(request: Request) -> JSONResponse:
    """Ready: 200 only when the store answers, else 503 `store.unavailable`."""
    await run_in_threadpool(gate_of(request).check_ready)
    return JSONResponse({"status": "ready"})
