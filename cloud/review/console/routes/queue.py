"""The review queue: its page and JSON snapshot, and taking the next item (a redirect, or the item's JSON)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from cloud.review.console.deps import ApiPostSession, ApiSession, PagePostSession, PageSession, State
from cloud.review.console.routes.items import item_detail, public_detail

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
async def queue_page(request: Request, state: State, session: PageSession, empty: int = 0) -> HTMLResponse:
    service = state.service
    snapshot = await asyncio.to_thread(service.queue.snapshot, service.review.queue_preview)
    holding = next(
        (i["item_id"] for i in snapshot["in_review"] if i["claimed_by"] == session.reviewer_id), None
    )
    return state.render(
        request,
        "queue.html",
        {"session": session, "snapshot": snapshot, "empty": bool(empty), "holding": holding},
    )


@router.post("/take")
async def take_page(state: State, session: PagePostSession) -> RedirectResponse:
    item = await asyncio.to_thread(state.service.take_next, session.reviewer_id)
    if item is None:
        return RedirectResponse("/?empty=1", status_code=303)
    return RedirectResponse(f"/items/{quote(item.item_id)}", status_code=303)


@router.get("/api/queue")
async def api_queue(state: State, _: ApiSession) -> dict[str, Any]:
    service = state.service
    return await asyncio.to_thread(service.queue.snapshot, service.review.queue_preview)


@router.post("/api/take")
async def api_take(state: State, session: ApiPostSession) -> Response:
    item = await asyncio.to_thread(state.service.take_next, session.reviewer_id)
    if item is None:
        return Response(status_code=204)
    return JSONResponse(public_detail(await item_detail(state.service, item.item_id)))
