"""Keys, audit and health: `/.well-known/jwks.json`, `/v1/audit/verify`, `/healthz`, `/readyz`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from interlock.credentials import Identity
from interlock.server.auth import caller, gate_of
from interlock.server.schemas import HealthBody, VerificationBody, refusals

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


@router.get("/healthz", response_model=HealthBody)
async def healthz() -> dict[str, str]:
    """Live: 200 while the process runs."""
    return {"status": "ok"}


@router.get("/readyz", response_model=HealthBody, responses=refusals(503))
async def readyz(request: Request) -> JSONResponse:
    """Ready: 200 only when the store answers, else 503 `store.unavailable`."""
    await run_in_threadpool(gate_of(request).check_ready)
    return JSONResponse({"status": "ready"})
