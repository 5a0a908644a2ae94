"""What the console's routes share: the app state, and the session and CSRF checks as FastAPI dependencies.

Every route but /login and /healthz needs a session. Pages (``PageSession``) answer a missing session with a
redirect to the login page; the API, the event stream and crop images (``ApiSession``) with 401 problem JSON.
Every POST must carry the session's CSRF token: form field ``csrf_token`` (``PagePostSession``) or header
``X-CSRF-Token`` (``ApiPostSession``); the login form uses a double-submit cookie. The acting reviewer is
always the session's. Reports, exports and reviewer accounts need the admin role (``Admin*Session``: 403
otherwise).
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from cloud.review.auth import LoginThrottle, Session
from cloud.review.console.problems import LoginRequired, Problem
from cloud.review.service import ReviewService

SESSION_COOKIE = "seamline_session"
LOGIN_CSRF_COOKIE = "seamline_login_csrf"


class ConsoleState:
    """One console app's state (``app.state.console``): the service, the templates, the login throttle."""

    def __init__(self, service: ReviewService, templates: Jinja2Templates) -> None:
        self.service = service
        self.templates = templates
        self.secure_cookies = service.review.secure_cookies
        self.throttle = LoginThrottle(service.audit.engine)
        taxonomy, language = service.taxonomy, service.review.language
        self.type_names = {t.id: t.names.get(language) for t in taxonomy.types} | {
            taxonomy.normal.id: taxonomy.normal.names.get(language)
        }

    def session_of(self, request: Request) -> Session | None:
        """The request's live session, if any (blocking: call in a worker thread)."""
        return self.service.reviewers.session(request.cookies.get(SESSION_COOKIE))

    def render(self, request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        return self.templates.TemplateResponse(
            request, name, {"type_names": self.type_names, **context}, status_code=status
        )


async def console_state(request: Request) -> ConsoleState:
    return request.app.state.console


State = Annotated[ConsoleState, Depends(console_state)]


async def page_session(request: Request, state: State) -> Session:
    session = await asyncio.to_thread(state.session_of, request)
    if session is None:
        raise LoginRequired()
    return session


async def api_session(request: Request, state: State) -> Session:
    session = await asyncio.to_thread(state.session_of, request)
    if session is None:
        raise Problem(401, "Not logged in", "Log in at /login; requests need the session cookie.")
    return session


PageSession = Annotated[Session, Depends(page_session)]
ApiSession = Annotated[Session, Depends(api_session)]


def require_admin(session: Session) -> Session:
    if not session.is_admin:
        raise Problem(403, "Admins only", "Reports, exports and reviewer accounts are for the admin role.")
    return session


async def admin_page_session(session: PageSession) -> Session:
    return require_admin(session)


async def admin_api_session(session: ApiSession) -> Session:
    return require_admin(session)


AdminPageSession = Annotated[Session, Depends(admin_page_session)]
AdminApiSession = Annotated[Session, Depends(admin_api_session)]


def check_csrf(session: Session, token: str | None) -> None:
    if not token or not hmac.compare_digest(token, session.csrf_token):
        raise Problem(403, "CSRF check failed", "The request did not carry this session's CSRF token.")


async def page_post_session(request: Request, session: PageSession) -> Session:
    check_csrf(session, str((await request.form()).get("csrf_token", "")))
    return session


async def api_post_session(request: Request, session: ApiSession) -> Session:
    check_csrf(session, request.headers.get("x-csrf-token"))
    return session


PagePostSession = Annotated[Session, Depends(page_post_session)]
ApiPostSession = Annotated[Session, Depends(api_post_session)]


async def admin_page_post_session(session: PagePostSession) -> Session:
    return require_admin(session)


AdminPagePostSession = Annotated[Session, Depends(admin_page_post_session)]
