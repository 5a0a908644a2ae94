"""The review console's HTTP app: pages for people, a JSON API for scripts and tests, an SSE stream.

The routes live in ``routes/``, one router per feature; what they share (the app state, the session and CSRF
checks) is in ``deps.py``. This module builds the app: the state, the routers, the body limit and the error
answers (problem JSON, or a login redirect for pages).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from cloud.review.console.deps import ConsoleState
from cloud.review.console.problems import LoginRequired, Problem, problem_response
from cloud.review.console.routes import admin, auth, events, health, items, metrics, queue, reports
from cloud.review.service import ReviewService

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 1 << 20  # a decision is a few kB; anything near this is a mistake or an attack


def create_app(service: ReviewService) -> FastAPI:
    """The console app for ``service`` (started and stopped with the app)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="Seamline review console",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.console = ConsoleState(service, Jinja2Templates(directory=HERE / "templates"))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for feature in (health, metrics, auth, queue, items, reports, admin, events):
        app.include_router(feature.router)
    app.middleware("http")(_limit_body)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(LoginRequired, _login)
    return app


async def _limit_body(request: Request, call_next):  # type: ignore[no-untyped-def]
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        return problem_response(413, "Request too large", f"bodies are limited to {MAX_BODY_BYTES} bytes")
    if (
        request.method == "POST"
        and length is None
        and "chunked" in request.headers.get("transfer-encoding", "")
    ):
        return problem_response(411, "Length required", "send a Content-Length (bodies are limited to 1 MiB)")
    return await call_next(request)


async def _problem(_: Request, exc: Problem) -> JSONResponse:
    return problem_response(exc.status, exc.title, exc.detail)


async def _login(request: Request, _: LoginRequired) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
