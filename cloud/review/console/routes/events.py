"""``/events``: the queue as server-sent events, sent again whenever it changes (or every heartbeat)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from cloud.review.console.deps import ApiSession, State

SSE_HEARTBEAT_S = 15.0
router = APIRouter()


@router.get("/events")
async def events(request: Request, state: State, _: ApiSession) -> StreamingResponse:
    service = state.service

    async def stream() -> AsyncIterator[str]:
        while not service.watch.closed and not await request.is_disconnected():
            if (
                await asyncio.to_thread(state.session_of, request) is None
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
