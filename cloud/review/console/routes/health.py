"""``/healthz``: liveness for load balancers and the demo (no session needed)."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.review.console.deps import State

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz(state: State) -> dict[str, str]:
    return {"status": "ok", "mqtt": "connected" if state.service.bus.connected else "disconnected"}
