"""`/v1/grants`: consume a grant for exactly the action about to run, and report its result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from interlock.core.errors import AuthError
from interlock.credentials import Identity
from interlock.server.auth import caller, gate_of
from interlock.server.bodies import read_model
from interlock.server.schemas import (
    ConsumeBody,
    ConsumptionBody,
    ResultBody,
    ResultRecordBody,
    refusals,
    request_body,
)

router = APIRouter(prefix="/v1/grants", tags=["grants"])


@router.post("/consume", response_model=None, openapi_extra=request_body(ConsumeBody),
             responses={200: {"model": ConsumptionBody}, **refusals(400, 401, 403, 409, 410, 413, 503)})
async def consume(request: Request, executor: Annotated[Identity, Depends(caller("principal"))]) -> JSONResponse:
    """Consume a grant once, as the executor (the caller) about to run exactly this action."""
    body = await read_model(request, ConsumeBody)
    if body.executor is not None and body.executor != executor.subject_id:
        raise AuthError("auth.principal_mismatch",
                        f"the body names executor `{body.executor}`, but the caller is `{executor.subject_id}`")
    action = {"action": body.action, "resource": body.resource, "params": body.params}
    # On the event loop's thread, all of it but the commit (see GroupCommitWriter.run_async).
    consumed = await gate_of(request).consume_async(body.grant, executor.subject_id, action)
    return JSONResponse({"consumed": True, "jti": consumed.jti, "request_id": consumed.request_id,
                         "executor": consumed.executor, "action": consumed.action, "digest": consumed.digest})


@router.post("/{jti}/result", response_model=None, openapi_extra=request_body(ResultBody),
             responses={200: {"model": ResultRecordBody}, **refusals(400, 401, 403, 409, 413, 503)})
async def report(
    request: Request, jti: str, executor: Annotated[Identity, Depends(caller("principal"))]
) -> JSONResponse:
    """Report the execution result of a consumed grant, as its executor (the caller)."""
    body = await read_model(request, ResultBody)
    grant = await run_in_threadpool(
        lambda: gate_of(request).report(jti, body.result == "succeeded", body.detail, executor=executor.subject_id)
    )
    return JSONResponse({"jti": grant.jti, "request_id": grant.request_id, "result": grant.result,
                         "detail": grant.result_detail})
