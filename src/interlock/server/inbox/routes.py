"""`/inbox`: approvers sign in with their credential, see what waits for them, and approve or reject over `web`."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool

from interlock.core.approval import ApproverAuth
from interlock.core.errors import AuthError, InterlockError, RequestError
from interlock.credentials import token_sha256
from interlock.http_status import status_for
from interlock.server.auth import approver_takes_part, credentials_of, gate_of
from interlock.server.inbox import presentation
from interlock.sessions import Session, SessionBook

# The channel of an approval given here: where the approver authenticated, never a form field.
WEB_CHANNEL = "web"
# How an approver here authenticated: a session opened with their credential.
WEB_AUTH: ApproverAuth = "session"
MAX_FORM_BYTES = 64 * 1024  # a 4096-character comment, percent-encoded, fits several times over
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_templates = Environment(loader=PackageLoader("interlock.server", "templates"),
                         autoescape=select_autoescape(["html"]), undefined=StrictUndefined)


# The message after a decision: `?done=` names one of these, never text of its own.
_DONE = {"approved": "You approved this request.", "rejected": "You rejected this request.",
         "signed_off": "You signed off this break-glass use."}


@dataclass(frozen=True)
class InboxSettings:
    """Per app: its sessions, and whether cookies are `Secure` (only plain-HTTP loopback development turns it off)."""

    sessions: SessionBook
    secure: bool

    @property
    def session_cookie(self) -> str:
        # RFC 6265bis §4.1.3.2: a `__Host-` cookie must be Secure, for `/`, with no Domain: no subdomain can plant it.
        return "__Host-interlock-session" if self.secure else "interlock-session"

    @property
    def login_cookie(self) -> str:
        return "__Host-interlock-login" if self.secure else "interlock-login"


class _InboxRoute(APIRoute):
    """Every inbox response, refusals included, is an HTML page with the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                # Fetch metadata: a browser says when a form comes from another site; refuse before reading it.
                if request.method == "POST" and request.headers.get("sec-fetch-site", "same-origin") not in (
                        "same-origin", "none"):
                    raise AuthError("auth.csrf", "a form posted from another site is refused")
                response = await handler(request)
            except InterlockError as error:
                response = await _refusal(request, error)
            response.headers.update(SECURITY_HEADERS)
            return response

        return guarded


router = APIRouter(prefix="/inbox", route_class=_InboxRoute, include_in_schema=False)


def install(app: FastAPI, *, dev_insecure_cookies: bool = False) -> None:
    """Serve the inbox from `app`; `dev_insecure_cookies` drops `Secure` for plain-HTTP loopback development."""
    gate = app.state.gate
    app.state.inbox = InboxSettings(SessionBook(gate.store, gate.clock), secure=not dev_insecure_cookies)
    app.include_router(router)


@router.get("/static/inbox.css")
async def stylesheet() -> Response:
    css = resources.files("interlock.server").joinpath("templates", "inbox.css").read_text()
    return Response(css, media_type="text/css")


@router.get("/login")
async def login_form(request: Request) -> Response:
    if await _session(request):
        return RedirectResponse("/inbox", status_code=303)
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    settings = _settings(request)
    form = await _form(request, {"token", "csrf_token"})
    # Login CSRF: a double-submitted token, so another site cannot sign a browser in as someone else.
    if not same_token(request.cookies.get(settings.login_cookie, ""), form.get("csrf_token")):
        raise AuthError("auth.csrf", "the sign-in form is stale or came from another site: reload it and try again")
    token = form.get("token", "").strip()
    try:
        identity = await run_in_threadpool(credentials_of(request).authenticate, token)
        if identity.role != "approver":
            raise AuthError("auth.forbidden", f"a {identity.role} credential cannot sign in to the inbox")
    except AuthError as refused:
        return _login_page(request, refused)
    # Signing in again replaces a session.
    await run_in_threadpool(settings.sessions.close, request.cookies.get(settings.session_cookie))
    session_id = await run_in_threadpool(settings.sessions.open, token_sha256(token), identity.subject_id)
    response = RedirectResponse("/inbox", status_code=303)
    _set_cookie(response, settings, settings.session_cookie, session_id)
    response.delete_cookie(settings.login_cookie, path="/", secure=settings.secure, httponly=True, samesite="strict")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    settings = _settings(request)
    session = await _signed_in(request)
    _check_csrf(session, await _form(request, {"csrf_token"}))
    await run_in_threadpool(settings.sessions.close, request.cookies.get(settings.session_cookie))
    response = RedirectResponse("/inbox/login", status_code=303)
    response.delete_cookie(settings.session_cookie, path="/", secure=settings.secure, httponly=True,
                           samesite="strict")
    return response


@router.get("")
async def inbox(request: Request) -> Response:
    session = await _signed_in(request)
    gate = gate_of(request)
    waiting = await run_in_threadpool(gate.pending_for, session.subject_id)
    reviews = await run_in_threadpool(lambda: [
        r for r in gate.open_reviews() if approver_takes_part(gate, gate.review(r.request_id), session.subject_id)])
    return _page("inbox.html", session=session, cards=presentation.group_cards(waiting),
                 reviews=presentation.open_reviews(reviews, gate.clock()))


@router.get("/requests/{request_id}")
async def request_page(request: Request, request_id: str) -> Response:
    session = await _signed_in(request)
    gate = gate_of(request)
    review = await run_in_threadpool(gate.review, request_id)
    if not approver_takes_part(gate, review, session.subject_id):
        raise AuthError("auth.forbidden", "you take no part in this request: only an approver its rules need, one"
                                          " who decided on it or may review its break-glass use may open it")
    # The grant is the requester's executor's capability: the page never carries it.
    review = replace(review, state=replace(review.state, grant=None))
    open_reviews = await run_in_threadpool(gate.open_reviews)
    flash = _DONE.get(request.query_params.get("done", ""), "")
    return _page("request.html", session=session, flash=flash, **presentation.detail(review),
                 break_glass=next(iter(presentation.open_reviews(
                     [r for r in open_reviews if r.request_id == request_id], gate.clock())), None))


@router.post("/requests/{request_id}/break-glass-review")
async def sign_off(request: Request, request_id: str) -> Response:
    session = await _signed_in(request)
    form = await _form(request, {"comment", "csrf_token"})
    _check_csrf(session, form)
    # A second post by the same reviewer is refused by the gate (`approval.duplicate`).
    await run_in_threadpool(lambda: gate_of(request).review_break_glass(
        request_id, session.subject_id, WEB_CHANNEL, form.get("comment", "")))
    return RedirectResponse(f"/inbox/requests/{quote(request_id, safe='')}?done=signed_off", status_code=303)


@router.post("/requests/{request_id}/decision")
async def decide(request: Request, request_id: str) -> Response:
    session = await _signed_in(request)
    form = await _form(request, {"decision", "comment", "binding_code", "csrf_token"})
    _check_csrf(session, form)
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        raise RequestError("input.invalid", "decision must be `approve` or `reject`")
    # A second post of the same form is refused by the gate (`approval.duplicate`) and recorded once.
    await run_in_threadpool(lambda: gate_of(request).decide_approval(
        request_id, session.subject_id, WEB_CHANNEL, reject=decision == "reject", comment=form.get("comment", ""),
        auth=WEB_AUTH, binding_code=form.get("binding_code")))
    # Post/redirect/get: reloading the page that follows does not post the decision again.
    done = "approved" if decision == "approve" else "rejected"
    return RedirectResponse(f"/inbox/requests/{quote(request_id, safe='')}?done={done}", status_code=303)


# --- sessions, forms, pages -------------------------------------------------------------------


def _settings(request: Request) -> InboxSettings:
    settings: InboxSettings = request.app.state.inbox
    return settings


async def _signed_in(request: Request) -> Session:
    """The caller's live session; its credential is checked again on every request, so a revocation ends it."""
    settings = _settings(request)
    cookie = request.cookies.get(settings.session_cookie)
    session = await run_in_threadpool(settings.sessions.find, cookie)
    if session is None:
        raise AuthError("auth.session", "sign in to the inbox: there is no session, or it ended after 30 minutes idle")
    try:
        await run_in_threadpool(credentials_of(request).identify, session.credential_hash)
    except AuthError:
        await run_in_threadpool(settings.sessions.close, cookie)
        raise
    return session


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token; a missing one never matches."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def _check_csrf(session: Session, form: dict[str, str]) -> None:
    if not same_token(session.csrf_token, form.get("csrf_token")):
        raise AuthError("auth.csrf", "the form's CSRF token is missing or wrong: reload the page and try again")


async def _form(request: Request, fields: set[str]) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body: bounded, UTF-8, known fields, each at most once."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise RequestError("input.invalid", "expected a form (application/x-www-form-urlencoded)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise RequestError("input.too_large", f"the form is over the {MAX_FORM_BYTES} byte limit")
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, encoding="utf-8", errors="strict",
                          max_num_fields=len(fields))
    except ValueError:
        raise RequestError("input.invalid", "the form is not URL-encoded UTF-8 with the expected fields") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name not in fields:
            raise RequestError("input.unknown_field", f"unknown form field `{name}`", field=name)
        if name in form:
            raise RequestError("input.duplicate_key", f"form field `{name}` is given twice", field=name)
        form[name] = value
    return form


def _set_cookie(response: Response, settings: InboxSettings, name: str, value: str) -> None:
    response.set_cookie(name, value, path="/", secure=settings.secure, httponly=True, samesite="strict")


def _page(template: str, status: int = 200, session: Session | None = None, **context: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(
        approver=presentation.identifier(session.subject_id) if session else None,
        csrf_token=session.csrf_token if session else "", **context)
    return HTMLResponse(html, status_code=status)


def _login_page(request: Request, refused: InterlockError | None = None) -> Response:
    settings = _settings(request)
    login_token = request.cookies.get(settings.login_cookie) or ""
    if len(login_token) < 32:
        login_token = secrets.token_urlsafe(32)
    response = _page("login.html", status_for(refused.code) if refused else 200, error=refused,
                     login_token=login_token)
    _set_cookie(response, settings, settings.login_cookie, login_token)
    return response


async def _session(request: Request) -> Session | None:
    """The caller's live session, if any (its idle timer restarted)."""
    settings = _settings(request)
    return await run_in_threadpool(settings.sessions.find, request.cookies.get(settings.session_cookie))


async def _refusal(request: Request, error: InterlockError) -> Response:
    if error.code == "auth.session" and request.method == "GET":
        return RedirectResponse("/inbox/login", status_code=303)
    try:
        session = await _session(request)
    except InterlockError:
        session = None  # the refusal page is shown whether or not the store answers
    # No link back to a request the approver may not open.
    request_id = None if error.code == "auth.forbidden" else request.path_params.get("request_id")
    return _page("refusal.html", status_for(error.code), session=session, error=error, request_id=request_id)
