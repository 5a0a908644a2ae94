"""``/metrics``: Prometheus text for scrapers (no session: put it behind the proxy's own rules)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cloud.review.console.deps import State

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(state: State) -> Response:
    body = await asyncio.to_thread(generate_latest, state.service.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
