"""The review console's HTTP routes: pages for people, a JSON API for scripts and tests, an SSE stream.

Every route but /login and /healthz needs a session. Pages answer a missing session with a redirect to the
login page; the API, the event stream and crop images with 401 problem JSON. Every POST must carry the
session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``); the login form uses a
double-submit cookie. The acting reviewer is always the session's.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from cloud.review.auth import LoginThrottle, Session
from cloud.review.decision import MISSED_PREFIX, CropLabel, DecisionError, HumanDecision, MissedDefect
from cloud.review.queue import ReviewError
from cloud.review.report import iso_week, weekly_report
from cloud.review.service import ReviewService
from seamline.clock import utcnow

logger = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "seamline_session"
LOGIN_CSRF_COOKIE = "seamline_login_csrf"
SSE_HEARTBEAT_S = 15.0
MAX_BODY_BYTES = 1 << 20  # a decision is a few kB; anything near this is a mistake or an attack


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
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    taxonomy = service.taxonomy
    language = service.review.language
    type_names = {t.id: t.names.get(language) for t in taxonomy.types} | {
        taxonomy.normal.id: taxonomy.normal.names.get(language)
    }
    secure = service.review.secure_cookies
    throttle = LoginThrottle()

    # errors -------------------------------------------------------------------------------------------------

    @app.middleware("http")
    async def _limit_body(request: Request, call_next):  # type: ignore[no-untyped-def]
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return problem_response(413, "Request too large", f"bodies are limited to {MAX_BODY_BYTES} bytes")
        if (
            request.method == "POST"
            and length is None
            and "chunked" in request.headers.get("transfer-encoding", "")
        ):
            return problem_response(
                411, "Length required", "send a Content-Length (bodies are limited to 1 MiB)"
            )
        return await call_next(request)

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    # sessions and CSRF ----------------------------------------------------------------------------------------

    def session_of(request: Request) -> Session | None:
        return service.reviewers.session(request.cookies.get(SESSION_COOKIE))

    async def page_session(request: Request) -> Session:
        session = await asyncio.to_thread(session_of, request)
        if session is None:
            raise LoginRequired()
        return session

    async def api_session(request: Request) -> Session:
        session = await asyncio.to_thread(session_of, request)
        if session is None:
            raise Problem(401, "Not logged in", "Log in at /login; requests need the session cookie.")
        return session

    def check_csrf(session: Session, token: str | None) -> None:
        if not token or not hmac.compare_digest(token, session.csrf_token):
            raise Problem(403, "CSRF check failed", "The request did not carry this session's CSRF token.")

    def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        return templates.TemplateResponse(
            request, name, {"type_names": type_names, **context}, status_code=status
        )

    # login ------------------------------------------------------------------------------------------------------

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "mqtt": "connected" if service.bus.connected else "disconnected"}

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, next: str = "/") -> HTMLResponse:
        token = secrets.token_urlsafe(32)
        response = render(
            request, "login.html", {"csrf_token": token, "next": _safe_next(next), "error": None}
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, max_age=3600
        )
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
        sent = str(form.get("csrf_token", ""))
        if not cookie or not hmac.compare_digest(cookie, sent):
            raise Problem(403, "CSRF check failed", "Reload the login page and try again.")
        reviewer_id, password = str(form.get("reviewer_id", "")).strip(), str(form.get("password", ""))
        next_url = _safe_next(str(form.get("next", "/")))
        wait = throttle.attempt(reviewer_id)
        if wait > 0:
            response = problem_response(429, "Too many failed logins", f"try again in {wait:.0f} s")
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        if not await asyncio.to_thread(service.reviewers.authenticate, reviewer_id, password):
            logger.warning("failed login for reviewer %r", reviewer_id)
            token = secrets.token_urlsafe(32)
            response = render(
                request,
                "login.html",
                {"csrf_token": token, "next": next_url, "error": "Unknown reviewer or wrong password."},
                401,
            )
            response.set_cookie(
                LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, max_age=3600
            )
            return response
        throttle.succeeded(reviewer_id)
        token, _ = await asyncio.to_thread(service.reviewers.open_session, reviewer_id)
        response = RedirectResponse(next_url, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=secure,
            max_age=int(service.review.session_hours * 3600),
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        logger.info("reviewer %s logged in", reviewer_id)
        return response

    @app.post("/logout")
    async def logout(request: Request) -> RedirectResponse:
        session = await page_session(request)
        check_csrf(session, str((await request.form()).get("csrf_token", "")))
        await asyncio.to_thread(service.reviewers.close_session, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # pages --------------------------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def queue_page(request: Request, empty: int = 0) -> HTMLResponse:
        session = await page_session(request)
        snapshot = await asyncio.to_thread(service.queue.snapshot, service.review.queue_preview)
        holding = next(
            (i["item_id"] for i in snapshot["in_review"] if i["claimed_by"] == session.reviewer_id), None
        )
        return render(
            request,
            "queue.html",
            {"session": session, "snapshot": snapshot, "empty": bool(empty), "holding": holding},
        )

    @app.post("/take")
    async def take_page(request: Request) -> RedirectResponse:
        session = await page_session(request)
        check_csrf(session, str((await request.form()).get("csrf_token", "")))
        item = await asyncio.to_thread(service.take_next, session.reviewer_id)
        if item is None:
            return RedirectResponse("/?empty=1", status_code=303)
        return RedirectResponse(f"/items/{quote(item.item_id)}", status_code=303)

    @app.get("/items/{item_id}", response_class=HTMLResponse)
    async def item_page(request: Request, item_id: str) -> HTMLResponse:
        session = await page_session(request)
        detail = await _detail(item_id)
        return render(request, "item.html", _item_context(session, detail, error=None))

    @app.post("/items/{item_id}/decision")
    async def decide_page(request: Request, item_id: str) -> Response:
        session = await page_session(request)
        form = await request.form()
        check_csrf(session, str(form.get("csrf_token", "")))
        _same_reviewer(session, form.get("reviewer_id"))
        detail = await _detail(item_id)
        try:
            decision = _decision_from_form(form, detail["garment"])
            await asyncio.to_thread(service.decide, session.reviewer_id, item_id, decision)
        except (DecisionError, ValidationError) as exc:
            return render(request, "item.html", _item_context(session, detail, error=_message(exc)), 422)
        except ReviewError as exc:
            return render(
                request,
                "item.html",
                _item_context(session, await _detail(item_id), error=str(exc)),
                exc.status,
            )
        if form.get("then") == "next":
            item = await asyncio.to_thread(service.take_next, session.reviewer_id)
            if item is not None:
                return RedirectResponse(f"/items/{quote(item.item_id)}", status_code=303)
            return RedirectResponse("/?empty=1", status_code=303)
        return RedirectResponse("/", status_code=303)

    @app.post("/items/{item_id}/release")
    async def release_page(request: Request, item_id: str) -> RedirectResponse:
        session = await page_session(request)
        check_csrf(session, str((await request.form()).get("csrf_token", "")))
        await _act(service.release, session.reviewer_id, item_id)
        return RedirectResponse("/", status_code=303)

    @app.get("/report", response_class=HTMLResponse)
    async def report_page(request: Request, week: str | None = None) -> HTMLResponse:
        session = await page_session(request)
        report = await _report(week)
        return render(
            request,
            "report.html",
            {"session": session, "report": report, "report_json": json.dumps(report, indent=2)},
        )

    @app.get("/report/charts/{name}.png")
    async def report_chart(request: Request, name: str, week: str | None = None) -> Response:
        await api_session(request)
        from cloud.review.charts import CHARTS, render_chart

        if name not in CHARTS:
            raise Problem(404, "No such chart", f"charts: {', '.join(CHARTS)}")
        report = await _report(week)
        png = await asyncio.to_thread(render_chart, name, report)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})

    @app.get("/crops/{item_id}/{crop_id}")
    async def crop_image(request: Request, item_id: str, crop_id: str) -> Response:
        await api_session(request)
        detail = await _detail(item_id)
        crop = next((c for c in detail["garment"]["crops"] if c["crop_id"] == crop_id), None)
        if crop is None:
            raise Problem(404, "No such crop", f"item {item_id!r} has no crop {crop_id!r}")
        data = await asyncio.to_thread(service.crop_store.get, crop["uri"])
        return Response(
            data, media_type=f"image/{crop['encoding']}", headers={"Cache-Control": "private, max-age=3600"}
        )

    # JSON API ---------------------------------------------------------------------------------------------------

    @app.get("/api/queue")
    async def api_queue(request: Request) -> dict[str, Any]:
        await api_session(request)
        return await asyncio.to_thread(service.queue.snapshot, service.review.queue_preview)

    @app.post("/api/take")
    async def api_take(request: Request) -> Response:
        session = await api_session(request)
        check_csrf(session, request.headers.get("x-csrf-token"))
        item = await asyncio.to_thread(service.take_next, session.reviewer_id)
        if item is None:
            return Response(status_code=204)
        return JSONResponse(_public_detail(await _detail(item.item_id)))

    @app.get("/api/items/{item_id}")
    async def api_item(request: Request, item_id: str) -> dict[str, Any]:
        await api_session(request)
        return _public_detail(await _detail(item_id))

    @app.post("/api/items/{item_id}/decision")
    async def api_decide(request: Request, item_id: str) -> dict[str, Any]:
        session = await api_session(request)
        check_csrf(session, request.headers.get("x-csrf-token"))
        try:
            body = await request.json()
        except ValueError as exc:
            raise Problem(400, "Malformed JSON", str(exc)) from exc
        if isinstance(body, dict):
            _same_reviewer(session, body.pop("reviewer_id", None))
        try:
            decision = HumanDecision.model_validate(body)
            result = await asyncio.to_thread(service.decide, session.reviewer_id, item_id, decision)
        except (DecisionError, ValidationError) as exc:
            raise Problem(422, "Invalid decision", _message(exc)) from exc
        except ReviewError as exc:
            raise Problem(exc.status, "Cannot decide this item", str(exc)) from exc
        return {
            "item_id": item_id,
            "verdict_id": result.verdict.verdict_id,
            "outcome": result.outcome.value,
            "regions": {region: outcome.value for region, outcome in result.regions},
        }

    @app.post("/api/items/{item_id}/release")
    async def api_release(request: Request, item_id: str) -> dict[str, Any]:
        session = await api_session(request)
        check_csrf(session, request.headers.get("x-csrf-token"))
        item = await _act(service.release, session.reviewer_id, item_id)
        return {"item_id": item.item_id, "status": item.status}

    @app.get("/api/report")
    async def api_report(request: Request, week: str | None = None) -> dict[str, Any]:
        await api_session(request)
        return await _report(week)

    @app.get("/events")
    async def events(request: Request) -> StreamingResponse:
        await api_session(request)

        async def stream() -> AsyncIterator[str]:
            while not service.watch.closed and not await request.is_disconnected():
                if (
                    await asyncio.to_thread(session_of, request) is None
                ):  # logged out or deactivated meanwhile
                    yield "event: logout\ndata: {}\n\n"
                    return
                seen = service.watch.version  # before the snapshot: a change during it wakes the next wait
                snapshot = await asyncio.to_thread(service.queue.snapshot, service.review.queue_preview)
                yield f"event: queue\ndata: {json.dumps(snapshot)}\n\n"
                await service.watch.wait(seen, SSE_HEARTBEAT_S)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # helpers ------------------------------------------------------------------------------------------------------

    async def _detail(item_id: str) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(service.queue.detail, item_id)
        except ReviewError as exc:
            raise Problem(exc.status, "No such review item", str(exc)) from exc

    async def _act(action, reviewer_id: str, item_id: str):  # type: ignore[no-untyped-def]
        try:
            return await asyncio.to_thread(action, reviewer_id, item_id)
        except ReviewError as exc:
            raise Problem(exc.status, "Cannot do that with this item", str(exc)) from exc

    async def _report(week: str | None) -> dict[str, Any]:
        try:
            start = iso_week(week) if week else iso_week(utcnow().strftime("%G-W%V"))
        except ValueError as exc:
            raise Problem(400, "Bad week", str(exc)) from exc
        return await asyncio.to_thread(weekly_report, service.audit.engine, start, taxonomy)

    def _item_context(session: Session, detail: dict[str, Any], *, error: str | None) -> dict[str, Any]:
        review = detail["review"]
        ai_by_crop = {d["crop_id"]: d for d in detail["ai_verdict"].get("defects", [])}
        decided = detail["decision"]
        human_by_crop = {d["crop_id"]: d for d in (decided["verdict"]["defects"] if decided else [])}
        return {
            "session": session,
            "review": review,
            "garment": detail["garment"],
            "ai": detail["ai_verdict"],
            "ai_by_crop": ai_by_crop,
            "human_by_crop": human_by_crop,
            "decision": decided,
            "error": error,
            "missed": [d for d in human_by_crop.values() if d["crop_id"].startswith(MISSED_PREFIX)],
            "mine": review.status == "in_review" and review.claimed_by == session.reviewer_id,
            "labels": [taxonomy.normal.id, *taxonomy.type_ids],
            "defect_types": list(taxonomy.type_ids),
            "views": [
                {"index": int(v[0]), "width": int(v[1]), "height": int(v[2])}
                for v in detail["garment"]["views"]
            ],
        }

    def _same_reviewer(session: Session, claimed: Any) -> None:
        if claimed not in (None, "", session.reviewer_id):
            raise Problem(
                403, "Cannot act as another reviewer", f"this session belongs to {session.reviewer_id!r}"
            )

    return app


def _decision_from_form(form: Any, garment: dict[str, Any]) -> HumanDecision:
    crops = [
        CropLabel(
            crop_id=c["crop_id"],
            type=str(form.get(f"type-{c['crop_id']}", "")),
            severity=str(form.get(f"severity-{c['crop_id']}", "")),
        )  # type: ignore[arg-type]
        for c in garment["crops"]
    ]
    try:
        missed_raw = json.loads(str(form.get("missed") or "[]"))
    except ValueError as exc:
        raise DecisionError(f"missed: not JSON ({exc})") from exc
    if not isinstance(missed_raw, list):
        raise DecisionError("missed: expected a list of boxes")
    missed = [MissedDefect.model_validate(m) for m in missed_raw]
    return HumanDecision(
        decision=str(form.get("decision", "")),
        note=str(form.get("note") or "") or None,
        crops=tuple(crops),
        missed=tuple(missed),
    )  # type: ignore[arg-type]


def _public_detail(detail: dict[str, Any]) -> dict[str, Any]:
    garment = detail["garment"]
    review = detail["review"]
    return json.loads(
        json.dumps(
            {
                "item_id": garment["item_id"],
                "site_id": garment["site_id"],
                "line_id": garment["line_id"],
                "status": review.status,
                "priority": review.priority,
                "claimed_by": review.claimed_by,
                "views": garment["views"],
                "crops": [
                    {
                        k: c[k]
                        for k in (
                            "crop_id",
                            "view_index",
                            "box",
                            "crop_box",
                            "width",
                            "height",
                            "detector_score",
                        )
                    }
                    for c in garment["crops"]
                ],
                "ai_verdict": detail["ai_verdict"],
                "decision": detail["decision"],
            },
            default=str,
        )
    )


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        return f"{where}: {first['msg']}"
    return str(exc)


def _safe_next(url: str) -> str:
    """Only same-site paths: never redirect a login to another host."""
    return url if url.startswith("/") and not url.startswith("//") else "/"
