"""The console's errors at the HTTP boundary: problem JSON (RFC 9457), or a login redirect for pages."""

from __future__ import annotations

from fastapi.responses import JSONResponse


class Problem(Exception):
    """An HTTP problem (RFC 9457) to answer with."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail


class LoginRequired(Exception):
    """A page was asked for without a session: redirect to the login page."""


def problem_response(status: int, title: str, detail: str = "") -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")
