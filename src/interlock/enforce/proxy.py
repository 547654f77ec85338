"""`interlock proxy`: an HTTP enforcing proxy in front of an existing API (ASGI; run by uvicorn).

A call on a gated route is forwarded only after a grant for exactly that call was consumed: the caller
presents one in `Interlock-Grant`, or — when the proxy has a `requester` — the proxy submits the call and
answers 202 while it waits for approval, and the same call, once approved, goes through once. The forwarded
call carries `Interlock-Execution` (see `execution.py`) and never the grant. The bytes forwarded are the bytes
the grant was checked against: the body is read (bounded) before anything is decided.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import anyio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from yarl import URL

from interlock.core import strict_json
from interlock.core.errors import GrantError, InterlockError, ProxyError, RequestError
from interlock.enforce.calls import Call, CallGate, GateLike, ended_code, report_result, waiting
from interlock.enforce.execution import EXECUTION_HEADER, ExecutionKey, content_digest
from interlock.enforce.proxy_config import ProxyConfig, RouteSpec, RouteTable, params_of, resource_of
from interlock.enforce.reports import GatheredReports
from interlock.http_status import status_for
from interlock.results import Consumption

__all__ = ["GRANT_HEADER", "EnforcingProxy"]

_log = logging.getLogger(__name__)
GRANT_HEADER = "Interlock-Grant"
MAX_QUERY_FIELDS = 100
# RFC 9110 §7.6.1 hop-by-hop fields, and what the proxy sets itself: never copied from one side to the other.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                         "transfer-encoding", "upgrade", "host", "content-length", "expect", "content-digest"})
# An upstream answer up to this size (by its Content-Length) is read whole and sent at once; larger ones stream.
_BUFFERED_BYTES = 64 * 1024
# Headers aiohttp would add by itself: the upstream gets the caller's, or none.
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
_GRANT_VALUE = re.compile(r"[A-Za-z0-9_.-]{1,16384}")
Clock = Callable[[], datetime.datetime]


class EnforcingProxy:
    """The ASGI application. `requester` (optional) submits calls that come without a grant; `executor`
    consumes grants and reports results — a local `Gate`, or `RemoteGate`s with the two tokens."""

    def __init__(self, config: ProxyConfig, executor: GateLike, key: ExecutionKey, *,
                 requester: GateLike | None = None, clock: Clock | None = None) -> None:
        self.config = config
        self.executor = executor
        self.calls = CallGate(requester, executor) if requester is not None else None
        self.key = key
        self.routes = RouteTable(config.routes)
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        parts = urlsplit(config.upstream)
        self._origin, self._base_path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
        self._client: aiohttp.ClientSession | None = None  # made in the event loop, on first use
        # Results of forwarded calls, recorded off the calls' path.
        self._reports = GatheredReports(functools.partial(report_result, executor))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not proxied
        request = Request(scope, receive)
        try:
            response = await self._handle(request)
        except InterlockError as refused:
            response = _refusal(refused)
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._reports.drain()  # every result still on its way is recorded before exit
                if self._client is not None:
                    await self._client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, request: Request) -> Response:
        grants = request.headers.getlist(GRANT_HEADER)
        if len(grants) > 1:
            raise RequestError("input.duplicate_header", f"`{GRANT_HEADER}` appears {len(grants)} times")
        raw_path = request.scope.get("raw_path", request.scope["path"].encode()).decode("latin-1")
        raw_query = request.scope.get("query_string", b"").decode("latin-1")
        matched = self.routes.match(request.method, raw_path)
        body = await self._read_body(request)
        target = self._base_path + raw_path + (f"?{raw_query}" if raw_query else "")
        if matched.route.pass_through:
            if grants:
                raise RequestError("input.invalid", f"`{GRANT_HEADER}` on a pass-through route: nothing to consume")
            return await self._forward(request, target, body, None)
        spec = {"action": matched.route.action,
                "resource": resource_of(matched.route, matched.path_params, self.config.default_resource()),
                "params": params_of(matched.path_params, _query(raw_query), _body(matched.route, request, body))}
        consumed: Consumption | Response
        if grants:
            if not _GRANT_VALUE.fullmatch(grants[0]):
                raise GrantError("grant.malformed", f"`{GRANT_HEADER}` is not a compact JWS")
            consumed = await self.executor.consume_async(grants[0], self.config.executor, spec)
        else:
            consumed = await self._consume_for_caller(request, target, spec)
        if isinstance(consumed, Response):
            return consumed
        return await self._forward(request, target, body, consumed)

    async def _consume_for_caller(self, request: Request, target: str, spec: dict[str, Any]) -> Consumption | Response:
        """Submit the call as the config's requester: its grant consumed, or the answer that says why not."""
        if self.calls is None:
            raise GrantError("grant.missing", f"this route needs a grant for exactly this call in `{GRANT_HEADER}`")
        assert self.config.requester is not None
        call = Call({
            "principal": self.config.requester.model_dump(mode="json"),
            "on_behalf_of": [p.model_dump(mode="json") for p in self.config.on_behalf_of],
            **spec, "channel": self.config.channel, "justification": self.config.justification,
            "context": {"http": {"method": request.method, "target": target,
                                 "client": request.client.host if request.client else None}},
            "executor": self.config.executor,
        }, again="sending the same request")
        async with self.calls.one_at_a_time_async(call.digest):
            ruling, consumed = await self.calls.take_async(call)
        if consumed is not None:
            return consumed
        state = ruling.state
        if ruling.kind == "held":
            held = waiting(state, self.config.channel)
            return JSONResponse({
                "outcome": "pending_approval", "request_id": state.request_id,
                "message": " ".join(("This call waits for approval and was NOT forwarded.", *held.lines,
                                     "Once approved, send exactly the same request again: it is then forwarded"
                                     " once; anything else is a new request.")),
                "approval": {"approvers": list(held.approvers), "expires_at": held.expires_at,
                             "binding_code": held.binding_code, "binding_code_required": held.binding_code_required},
            }, status_code=202)
        if ruling.kind == "denied":
            code = state.reasons[0] if state.reasons else "policy.denied"
        else:
            code = ended_code(state)
        return JSONResponse({"error": {"code": code, "message": state.explanation or f"request {state.outcome}",
                                       "detail": {"request_id": state.request_id, "outcome": state.outcome,
                                                  "reasons": list(state.reasons)}}},
                            status_code=403 if ruling.kind == "denied" else status_for(code))

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError("input.too_large", f"a body of {declared} bytes, over this proxy's {limit} byte limit")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError("input.too_large", f"a body over this proxy's {limit} byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _forward(self, request: Request, target: str, body: bytes, consumed: Consumption | None) -> Response:
        headers = _forwarded_headers(request)
        if consumed is not None:
            headers.append((EXECUTION_HEADER, self.key.issue(
                consumed, issuer=self.config.issuer, audience=self.config.audience, method=request.method,
                target=target, body=body, now=self._clock(), ttl=self.config.execution_ttl)))
            headers.append(("Content-Digest", content_digest(body)))
        try:
            answer = await self._session().request(
                request.method, URL(self._origin + target, encoded=True), headers=headers, data=body,
                allow_redirects=False, skip_auto_headers=_NO_AUTO_HEADERS)
        except TimeoutError:
            await self._report(consumed, False, "the upstream did not answer in time: outcome unknown")
            raise ProxyError("proxy.upstream_timeout", _spent("the upstream did not answer in time", consumed),
                             **_ids(consumed)) from None
        except aiohttp.ClientError as exc:
            await self._report(consumed, False, f"the upstream could not be reached or failed: {exc!r}")
            raise ProxyError("proxy.upstream_failed", _spent("the upstream could not be reached or failed", consumed),
                             **_ids(consumed)) from None
        except BaseException:
            # Cancelled (the proxy stops) or failed in an unforeseen way after the grant was consumed: on the record.
            with anyio.CancelScope(shield=True):
                await self._report(consumed, False, "stopped before the upstream answered: outcome unknown")
            raise
        succeeded = answer.status < 400
        detail = "" if succeeded else f"the upstream answered {answer.status}"

        async def report_later() -> None:
            # Not awaited here: the connection's next request would wait for it (HTTP/1.1 answers in order).
            if consumed is not None:
                self._reports.add(consumed, succeeded, detail)

        response: Response
        if answer.content_length is not None and answer.content_length <= _BUFFERED_BYTES:
            try:
                content = await answer.read()  # a small answer whole: cheaper than streaming it
            except (TimeoutError, aiohttp.ClientError) as exc:
                await self._report(consumed, False, f"the upstream's answer broke off: {exc!r}")
                raise ProxyError("proxy.upstream_failed", _spent("the upstream's answer broke off", consumed),
                                 **_ids(consumed)) from None
            finally:
                answer.release()
            response = Response(content, status_code=answer.status, background=BackgroundTask(report_later))
        else:
            async def finish() -> None:
                answer.release()
                await report_later()

            response = StreamingResponse(answer.content.iter_any(), status_code=answer.status,
                                         background=BackgroundTask(finish))
        response.raw_headers = _returned_headers(answer)  # as a list: several Set-Cookie fields stay several
        return response

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None:
            # No cookie jar (a cookie of one caller's answer must never ride on another's call), no proxy from
            # the environment, bytes passed on as they are (no decompression).
            self._client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.upstream_timeout),
                cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=False,
                connector=aiohttp.TCPConnector(limit=64))
        return self._client

    async def _report(self, consumed: Consumption | None, succeeded: bool, detail: str) -> None:
        if consumed is not None:
            await anyio.to_thread.run_sync(report_result, self.executor, consumed, succeeded, detail)


def _query(raw: str) -> dict[str, str]:
    """The query as a flat object; a name given twice is refused (which one an upstream takes is a guess)."""
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw), errors="strict",
                          max_num_fields=MAX_QUERY_FIELDS)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError("input.invalid", f"the query string cannot be read: {exc}") from None
    query: dict[str, str] = {}
    for name, value in pairs:
        if name in query:
            raise RequestError("input.duplicate_key", f"the query names `{name[:100]}` twice")
        query[name] = value
    strict_json.check_value(query, path="$.query")
    return query


def _body(route: RouteSpec, request: Request, body: bytes) -> Any:
    if route.body == "raw":
        return {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
                "content_type": request.headers.get("content-type", "")}
    if not body:
        return None
    if route.body == "none":
        raise RequestError("input.invalid", f"{route.method} {route.path} takes no body")
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise RequestError("input.invalid", f"a JSON body is expected here, not `{media or 'no content type'}`")
    return strict_json.parse(body)


def _forwarded_headers(request: Request) -> list[tuple[str, str]]:
    named = {token.strip().lower() for value in request.headers.getlist("connection") for token in value.split(",")}
    return [(name, value) for name, value in request.headers.items()
            if name not in _HOP_BY_HOP and name not in named and not name.startswith("interlock-")]


def _returned_headers(answer: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    named = {token.strip().lower() for token in answer.headers.get("connection", "").split(",")}
    return [(name.lower(), value) for name, value in answer.raw_headers
            if name.lower().decode("latin-1") not in (_HOP_BY_HOP - {"content-length"}) | named]


def _spent(what: str, consumed: Consumption | None) -> str:
    if consumed is None:
        return what
    return f"{what}; the grant is used up (the call may or may not have run): a new call needs a new grant"


def _ids(consumed: Consumption | None) -> dict[str, str]:
    return {"request_id": consumed.request_id, "grant": consumed.jti} if consumed else {}


def _refusal(error: InterlockError) -> Response:
    return JSONResponse(error.to_json(), status_code=status_for(error.code))
