"""Logging in and out: the login page and form (double-submit CSRF cookie, throttled), the session cookie."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud.review.console.deps import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleState,
    PagePostSession,
    State,
)
from cloud.review.console.problems import Problem, problem_response

logger = logging.getLogger(__name__)
router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, state: State, next: str = "/") -> HTMLResponse:
    return _login_form(request, state, _safe_next(next), error=None)


@router.post("/login")
async def login(request: Request, state: State) -> Response:
    form = await request.form()
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    sent = str(form.get("csrf_token", ""))
    if not cookie or not hmac.compare_digest(cookie, sent):
        raise Problem(403, "CSRF check failed", "Reload the login page and try again.")
    reviewer_id, password = str(form.get("reviewer_id", "")).strip(), str(form.get("password", ""))
    next_url = _safe_next(str(form.get("next", "/")))
    wait = state.throttle.attempt(reviewer_id)
    if wait > 0:
        response = problem_response(429, "Too many failed logins", f"try again in {wait:.0f} s")
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    service = state.service
    if not await asyncio.to_thread(service.reviewers.authenticate, reviewer_id, password):
        logger.warning("failed login for reviewer %r", reviewer_id)
        return _login_form(request, state, next_url, error="Unknown reviewer or wrong password.", status=401)
    state.throttle.succeeded(reviewer_id)
    token, _ = await asyncio.to_thread(service.reviewers.open_session, reviewer_id)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=state.secure_cookies,
        max_age=int(service.review.session_hours * 3600),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    logger.info("reviewer %s logged in", reviewer_id)
    return response


@router.post("/logout")
async def logout(request: Request, state: State, _: PagePostSession) -> RedirectResponse:
    await asyncio.to_thread(state.service.reviewers.close_session, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _login_form(
    request: Request, state: ConsoleState, next_url: str, *, error: str | None, status: int = 200
) -> HTMLResponse:
    """The login page with a fresh double-submit CSRF token (form field and cookie)."""
    token = secrets.token_urlsafe(32)
    response = state.render(
        request, "login.html", {"csrf_token": token, "next": next_url, "error": error}, status
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=state.secure_cookies, max_age=3600
    )
    return response


def _safe_next(url: str) -> str:
    """Only same-site paths: never redirect a login to another host."""
    return url if url.startswith("/") and not url.startswith("//") else "/"
