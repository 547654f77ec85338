"""`/v1/requests`: submit as the authenticated principal, read (and long-poll) a request's state, approve."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from interlock.core.action import from_value
from interlock.core.approval import ApproverAuth
from interlock.core.errors import AuthError
from interlock.credentials import Identity
from interlock.gate import Gate
from interlock.results import RequestReview, RequestState, review_json
from interlock.server.auth import approver_takes_part, caller, gate_of
from interlock.server.bodies import read_model, read_object
from interlock.server.schemas import (
    ApprovalBody,
    BreakGlassBody,
    ClaimedPrincipal,
    RequestStateBody,
    ReviewBody,
    SubmitBody,
    refusals,
    request_body,
)

router = APIRouter(prefix="/v1/requests", tags=["requests"])
# A change made by another process (another server, the CLI) has no in-process wake-up: re-read this often.
POLL_SECONDS = 0.5
MAX_WAIT_SECONDS = 60
# The channel of an approval given through this API: where the approver authenticated, never a body field.
API_CHANNEL = "api"
# How an approver on this API authenticated: a bearer credential.
API_AUTH: ApproverAuth = "token"
_WAIT = "long-poll: return as soon as the state changes, or after this many seconds (0-60)"


@router.post("", status_code=201, response_model=None, openapi_extra=request_body(SubmitBody),
             responses={201: {"model": RequestStateBody}, **refusals(400, 401, 403, 413, 503)})
async def submit(request: Request, principal: Annotated[Identity, Depends(caller("principal"))]) -> JSONResponse:
    """Submit an action request as the calling principal; the registry supplies its kind and attributes."""
    document = await read_object(request)
    claimed = document.pop("principal", None)
    if claimed is not None:
        _check_claim(from_value(ClaimedPrincipal, claimed), principal)
    document["principal"] = principal.principal()
    # The requester's declared channel: how the request reached it (e.g. `chat`); `api` if it says nothing.
    document.setdefault("channel", API_CHANNEL)
    # On the event loop's thread, all of it but the commit (see GroupCommitWriter.run_async).
    state = await gate_of(request).submit_async(document)
    return JSONResponse(state.to_json(), status_code=201)


@router.get("/{request_id}", response_model=None,
            responses={200: {"model": RequestStateBody}, **refusals(400, 401, 403, 404, 503)})
async def status(
    request: Request,
    request_id: str,
    who: Annotated[Identity, Depends(caller("principal", "approver", "admin"))],
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS, allow_inf_nan=False, description=_WAIT)] = 0,
) -> JSONResponse:
    """A request's state: for its requester, an approver who takes part in it, or an admin; `?wait=` long-polls.

    Only the requester receives the `grant`. The response's `ETag` names the state as this caller sees it. Sent
    back as `If-None-Match`, it makes the long-poll wait for a state other than that one, so a change that
    landed between two polls returns at once.
    """
    gate = gate_of(request)
    body = await _readable(gate, request_id, who)
    seen = request.headers.get("if-none-match") or _etag(body)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    if wait and _etag(body) == seen:
        with gate.notifier.subscribe(request_id) as changes:
            # Read before each wait: a change between the first read and the subscription is seen here.
            while (remaining := deadline - loop.time()) > 0:
                changes.clear()
                body = await _readable(gate, request_id, who)
                if _etag(body) != seen:
                    break
                await changes.wait(min(remaining, POLL_SECONDS))
    return JSONResponse(body, headers={"ETag": _etag(body)})


async def _readable(gate: Gate, request_id: str, who: Identity) -> dict[str, Any]:
    """The request's state as `who` may see it, read now; refused if `who` may not read it at all."""
    review = await run_in_threadpool(gate.review, request_id)
    _check_reader(gate, review, who)
    return _visible(review.state, who)


def _etag(body: dict[str, Any]) -> str:
    return '"' + hashlib.sha256(_canonical(body).encode()).hexdigest()[:32] + '"'


@router.post("/{request_id}/approvals", response_model=None, openapi_extra=request_body(ApprovalBody),
             responses={200: {"model": RequestStateBody}, **refusals(400, 401, 403, 404, 409, 410, 413, 503)})
async def approve(
    request: Request, request_id: str, approver: Annotated[Identity, Depends(caller("approver"))]
) -> JSONResponse:
    """Approve or reject as the calling approver, over the `api` channel; a sensitive action needs `binding_code`."""
    body = await read_model(request, ApprovalBody)
    state = await run_in_threadpool(
        lambda: gate_of(request).decide_approval(request_id, approver.subject_id, API_CHANNEL,
                                                 reject=body.decision == "reject", comment=body.comment,
                                                 auth=API_AUTH, binding_code=body.binding_code)
    )
    return JSONResponse(_visible(state, approver))


@router.post("/{request_id}/break-glass", response_model=None, openapi_extra=request_body(BreakGlassBody),
             responses={200: {"model": RequestStateBody}, **refusals(400, 401, 403, 404, 409, 410, 413, 503)})
async def break_glass(
    request: Request, request_id: str, approver: Annotated[Identity, Depends(caller("approver"))]
) -> JSONResponse:
    """Proceed alone under a policy `break_glass` entry, over `api`: the grant is issued at once, every approver
    group is alerted and a post-hoc review opens. A sensitive action needs `binding_code`, as an approval does."""
    body = await read_model(request, BreakGlassBody)
    state = await run_in_threadpool(
        lambda: gate_of(request).break_glass(request_id, approver.subject_id, API_CHANNEL, body.justification,
                                             auth=API_AUTH, binding_code=body.binding_code)
    )
    return JSONResponse(_visible(state, approver))


@router.post("/{request_id}/break-glass/reviews", response_model=None, openapi_extra=request_body(ReviewBody),
             responses={**refusals(400, 401, 403, 404, 409, 413, 503)})
async def review_break_glass(
    request: Request, request_id: str, approver: Annotated[Identity, Depends(caller("approver"))]
) -> JSONResponse:
    """Sign off a break-glass use as the calling approver; the second distinct sign-off closes the review."""
    body = await read_model(request, ReviewBody)
    review = await run_in_threadpool(
        lambda: gate_of(request).review_break_glass(request_id, approver.subject_id, API_CHANNEL, body.comment)
    )
    return JSONResponse(review_json(review))


def _check_claim(claimed: ClaimedPrincipal, principal: Identity) -> None:
    if claimed.id != principal.subject_id:
        raise AuthError("auth.principal_mismatch",
                        f"the body names principal `{claimed.id}`, but the caller is `{principal.subject_id}`")
    if claimed.kind is not None and claimed.kind != principal.kind:
        raise AuthError("auth.principal_mismatch", "the body's principal kind differs from the registered one")
    if claimed.attributes is not None and _canonical(claimed.attributes) != _canonical(principal.attributes or {}):
        raise AuthError("auth.principal_mismatch",
                        "a requester cannot assert its own attributes; the registry's differ")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _check_reader(gate: Gate, review: RequestReview, who: Identity) -> None:
    """Refuse anyone but the requester, an approver who takes part in the request, or an admin."""
    if who.role == "admin":
        return
    if who.role == "principal":
        if who.subject_id != review.state.requester:
            raise AuthError("auth.forbidden", "a principal may read only the requests it submitted")
        return
    if who.role != "approver" or not approver_takes_part(gate, review, who.subject_id):
        raise AuthError("auth.forbidden", f"`{who.subject_id}` takes no part in this request: only an approver its"
                                          " rules need, one who decided on it or may review its break-glass use"
                                          " may read it")


def _visible(state: RequestState, who: Identity) -> dict[str, Any]:
    """The state as `who` may see it: the grant is a bearer capability for the requester's executor, so nobody
    but the requester receives it."""
    body = state.to_json()
    if who.role != "principal" or who.subject_id != state.requester:
        body.pop("grant", None)
    return body
