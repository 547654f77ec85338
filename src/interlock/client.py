"""The HTTP client SDK: `RemoteGate`, the surface of a local `Gate` over an `interlock serve` API."""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from interlock.audit.log import Verification
from interlock.core import strict_json
from interlock.core.action import ActionRequest, ActionSpec
from interlock.core.errors import (
    ApprovalError,
    AuditError,
    AuthError,
    GrantError,
    InterlockError,
    KeyringError,
    PolicyError,
    RequestError,
    StoreError,
)
from interlock.results import Consumption, RequestState
from interlock.store.base import BreakGlassReview, ReviewSignoff

__all__ = ["DEFAULT_TIMEOUT", "MAX_WAIT_CHUNK", "RemoteGate", "ReportedResult", "error_for"]

DEFAULT_TIMEOUT = 10.0
KEEPALIVE_EXPIRY = 2.0  # seconds; under the server's 5 s keep-alive timeout
# The server's `?wait=` ceiling (server/routes/requests.py); longer waits are several long-polls.
MAX_WAIT_CHUNK = 60.0
_PENDING = "pending_approval"

# The same classes a local Gate raises, by reason-code family (core/errors.py).
_FAMILIES: dict[str, type[InterlockError]] = {
    "input": RequestError,
    "policy": PolicyError,
    "approval": ApprovalError,
    "request": ApprovalError,
    "grant": GrantError,
    "auth": AuthError,
    "store": StoreError,
    "keys": KeyringError,
    "audit": AuditError,
}


@dataclass(frozen=True)
class ReportedResult:
    """The result the server recorded for a consumed grant (the local gate returns the whole GrantRecord)."""

    jti: str
    request_id: str
    result: str
    detail: str | None


def error_for(code: str, message: str, **detail: Any) -> InterlockError:
    """The InterlockError subclass a local gate raises for `code`; an unknown family stays an InterlockError."""
    return _FAMILIES.get(code.split(".", 1)[0], InterlockError)(code, message, **detail)


class RemoteGate:
    """A gate across HTTP, as one authenticated caller (a principal, an approver or an admin).

    Every failure raises an InterlockError; INVARIANT 5: an unreachable server, a timeout or a response
    that is not the API's contract is `store.unavailable` / `store.bad_response`, never an allow.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(token, str) or not token:
            raise RequestError("input.invalid", "a RemoteGate needs a bearer token")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, transport=transport, follow_redirects=False,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            # uvicorn closes a keep-alive connection after 5 s idle; a POST sent on one it is closing gets no
            # answer and is not retried, so idle connections are dropped well before that.
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY),
        )

    def __repr__(self) -> str:
        return f"RemoteGate({self.url!r})"  # never the token

    def __enter__(self) -> RemoteGate:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- requests -----------------------------------------------------------------------------

    def submit(self, document: ActionRequest | dict[str, Any] | bytes | str) -> RequestState:
        """Submit a request as the authenticated principal; a `principal` in it must be that principal."""
        return _state(self._call("POST", "/v1/requests", _body_of(document)))

    async def submit_async(self, document: ActionRequest | dict[str, Any] | bytes | str) -> RequestState:
        """`submit` from async code, in a worker thread."""
        return await anyio.to_thread.run_sync(self.submit, document)

    def status(self, request_id: str) -> RequestState:
        """A request's state now (for its requester, an approver or an admin)."""
        return _state(self._call("GET", f"/v1/requests/{_segment(request_id)}"))

    def wait(self, request_id: str, timeout_seconds: float) -> RequestState:
        """Long-poll until the request leaves `pending_approval` or `timeout_seconds` pass; the last state."""
        deadline = time.monotonic() + timeout_seconds
        path = f"/v1/requests/{_segment(request_id)}"
        state, seen = self._poll(path, 0.0, None)
        while state.outcome == _PENDING and (remaining := deadline - time.monotonic()) > 0:
            # `If-None-Match` names the state this client last saw, so a change that lands between two
            # polls ends the next one at once instead of holding it for the whole wait.
            state, seen = self._poll(path, min(remaining, MAX_WAIT_CHUNK), seen)
        return state

    def _poll(self, path: str, wait: float, seen: str | None) -> tuple[RequestState, str | None]:
        headers = {"If-None-Match": seen} if seen else {}
        response = self._send("GET", path, params={"wait": f"{wait:.3f}"}, headers=headers,
                              timeout=wait + self.timeout)
        return _state(_answer(response)), response.headers.get("etag")

    def decide_approval(
        self, request_id: str, *, reject: bool = False, comment: str = "", binding_code: str | None = None
    ) -> RequestState:
        """Approve (or reject) as the authenticated approver.

        Unlike `Gate.decide_approval`, there is no approver id or channel argument: the server takes the
        approver from the credential and the channel from where it authenticated (`api`), so a caller can
        neither approve as someone else nor claim a channel (INVARIANT 4). Approving a sensitive action
        needs `binding_code`, the code its requester was given and passed on.
        """
        body: dict[str, Any] = {"decision": "reject" if reject else "approve", "comment": comment}
        if binding_code is not None:
            body["binding_code"] = binding_code
        return _state(self._call("POST", f"/v1/requests/{_segment(request_id)}/approvals", body))

    def break_glass(self, request_id: str, justification: str, *, binding_code: str | None = None) -> RequestState:
        """Approve a pending request alone, as the authenticated approver, under a policy `break_glass` entry.

        As with `decide_approval`, the person and the channel come from the credential, not from arguments.
        A sensitive action needs `binding_code`, the code its requester was given and passed on.
        """
        body: dict[str, Any] = {"justification": justification}
        if binding_code is not None:
            body["binding_code"] = binding_code
        return _state(self._call("POST", f"/v1/requests/{_segment(request_id)}/break-glass", body))

    def review_break_glass(self, request_id: str, comment: str = "") -> BreakGlassReview:
        """Sign off a break-glass use as the authenticated approver; the second distinct sign-off closes it."""
        body = {"comment": comment}
        return _review(self._call("POST", f"/v1/requests/{_segment(request_id)}/break-glass/reviews", body))

    # --- grants ---------------------------------------------------------------------------------

    def consume(self, grant: str, executor: str, action: ActionSpec | dict[str, Any] | bytes | str) -> Consumption:
        """Consume a grant once for exactly `action`; `executor` must be the authenticated principal."""
        spec = _body_of(action)
        body = _object(self._call("POST", "/v1/grants/consume", {"grant": grant, "executor": executor, **spec}))
        try:
            return Consumption(body["jti"], body["request_id"], body["executor"], body["action"], body["digest"])
        except (KeyError, TypeError):
            raise _bad_response("a consume response without its fields") from None

    async def consume_async(
        self, grant: str, executor: str, action: ActionSpec | dict[str, Any] | bytes | str
    ) -> Consumption:
        """`consume` from async code, in a worker thread."""
        return await anyio.to_thread.run_sync(self.consume, grant, executor, action)

    def report(self, jti: str, succeeded: bool, detail: str = "", *, executor: str | None = None) -> ReportedResult:
        """Record the execution result of a consumed grant, as its executor (the authenticated principal).

        `executor` is accepted for the guard's sake; the server checks the caller itself is the grant's executor.
        """
        body = {"result": "succeeded" if succeeded else "failed", "detail": detail}
        recorded = _object(self._call("POST", f"/v1/grants/{_segment(jti)}/result", body))
        try:
            return ReportedResult(recorded["jti"], recorded["request_id"], recorded["result"], recorded.get("detail"))
        except (KeyError, TypeError):
            raise _bad_response("a result response without its fields") from None

    # --- operations -----------------------------------------------------------------------------

    def check_ready(self) -> None:
        """Return if the server's store answers (`/readyz`); `store.unavailable` otherwise."""
        self._call("GET", "/readyz")

    def verify_audit(self) -> Verification:
        """The server's verification of its audit log (an admin credential only)."""
        body = _object(self._call("GET", "/v1/audit/verify"))
        try:
            ok, entries, root, signed, problems = (body["ok"], body["entries"], body["root"], body["signed"],
                                                   body["problems"])
        except KeyError:
            raise _bad_response("a verification without its fields") from None
        if not (isinstance(ok, bool) and isinstance(entries, int) and isinstance(root, str)
                and isinstance(signed, int) and isinstance(problems, list)
                and all(isinstance(p, str) for p in problems)):
            raise _bad_response("a verification whose fields are of the wrong types")
        return Verification(ok, entries, root, signed, tuple(problems))

    # --- keys -----------------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The server's grant verification keys (RFC 7517 JWK Set)."""
        keys = _object(self._call("GET", "/.well-known/jwks.json"))
        if not isinstance(keys.get("keys"), list):
            raise _bad_response("a JWK Set without `keys`")
        return keys

    # --- transport ------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *,
        params: dict[str, str] | None = None, timeout: float | None = None,
    ) -> Any:
        content = None
        headers = {}
        if body is not None:
            try:
                # The server's parser refuses NaN/Infinity; refuse them here rather than send what json.dumps allows.
                content = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
            except (TypeError, ValueError) as exc:
                raise RequestError("input.invalid", f"the body is not JSON: {exc}") from None
            headers["Content-Type"] = "application/json"
        return _answer(self._send(method, path, content=content, headers=headers, params=params, timeout=timeout))

    def _send(
        self, method: str, path: str, *, content: bytes | None = None, headers: dict[str, str],
        params: dict[str, str] | None = None, timeout: float | None = None,
    ) -> httpx.Response:
        """One HTTP exchange; no answer in time, or no connection, fails closed as `store.unavailable`."""
        try:
            return self._http.request(method, path, content=content, headers=headers, params=params,
                                      timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.TimeoutException as exc:
            raise StoreError("store.unavailable", f"interlock server at {self.url} timed out: {exc!r}") from None
        except httpx.TransportError as exc:
            raise StoreError("store.unavailable", f"interlock server at {self.url} unreachable: {exc!r}") from None


def _body_of(document: ActionSpec | dict[str, Any] | bytes | str) -> dict[str, Any]:
    """A request or action as the JSON object to send (bytes and text through the strict parser)."""
    if isinstance(document, ActionSpec):
        return document.model_dump(mode="json")
    if isinstance(document, dict):
        return document
    return _object(strict_json.parse(document))


def _answer(response: httpx.Response) -> Any:
    """The JSON of a 2xx; the refusal of anything else as the error a local gate would raise."""
    try:
        value = response.json()
    except ValueError:
        value = None
    if response.is_success and value is not None:
        return value
    error = value.get("error") if isinstance(value, dict) else None
    if (isinstance(error, dict) and isinstance(error.get("code"), str) and error["code"]
            and isinstance(error.get("message"), str)):
        detail: dict[str, Any] = error["detail"] if isinstance(error.get("detail"), dict) else {}
        raise error_for(error["code"], error["message"], **{**detail, "status": response.status_code})
    if response.status_code >= 500:
        # A proxy's or crashed server's page: nothing was decided that the caller may rely on.
        raise StoreError("store.server_error", f"interlock server answered {response.status_code} without a"
                         " reason code", status=response.status_code)
    raise _bad_response(f"HTTP {response.status_code} without the API's JSON", status=response.status_code)


def _bad_response(what: str, **detail: Any) -> StoreError:
    return StoreError("store.bad_response", f"interlock server sent {what}", **detail)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad_response(f"{type(value).__name__} where an object was expected")
    return value


def _segment(value: str) -> str:
    """One URL path segment: an id that is not one (`..`, `/`, `?`) is refused here, not resolved elsewhere."""
    if not isinstance(value, str) or not value or value in {".", ".."} or any(c in value for c in "/?#%\\"):
        raise RequestError("input.invalid", f"`{value}` is not an id")
    return value


def _state(value: Any) -> RequestState:
    body = _object(value)
    approval = body.get("approval") or {}
    try:
        expires = approval.get("expires_at")
        return RequestState(
            request_id=body["request_id"],
            outcome=body["outcome"],
            reasons=tuple(body["reasons"]),
            explanation=body["explanation"],
            digest=body["digest"],
            policy_version=body["policy_version"],
            grant=body.get("grant"),
            expires_at=datetime.datetime.fromisoformat(expires) if expires else None,
            requirements=tuple(approval.get("requirements", ())),
            progress=tuple(approval.get("progress", ())),
            approvals=tuple(body.get("approvals") or ()),
            consumed=bool(body.get("consumed")),
            result=body.get("result"),
            binding_code=approval.get("binding_code"),
            sensitive=bool(approval.get("binding_code_required")),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _bad_response("a request state without its fields") from None


def _review(value: Any) -> BreakGlassReview:
    body = _object(value)
    try:
        request_id = body["request_id"]
        closed = body.get("closed_at")
        return BreakGlassReview(
            request_id=request_id,
            entry_id=body["break_glass_entry"],
            used_by=body["used_by"],
            justification=body["justification"],
            opened_at=datetime.datetime.fromisoformat(body["opened_at"]),
            due_at=datetime.datetime.fromisoformat(body["due_at"]),
            closed_at=datetime.datetime.fromisoformat(closed) if closed else None,
            signoffs=tuple(
                ReviewSignoff(s["id"], request_id, s["reviewer"], s["channel"], s["comment"],
                              datetime.datetime.fromisoformat(s["at"]))
                for s in body["signoffs"]
            ),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _bad_response("a break-glass review without its fields") from None
