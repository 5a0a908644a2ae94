"""The weekly report: its page, its charts (PNG) and its JSON."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cloud.learning.jobs import recent_jobs
from cloud.learning.rollout_report import rollout_report
from cloud.review.console.deps import AdminApiSession, AdminPageSession, State
from cloud.review.console.problems import Problem
from cloud.review.report import iso_week, weekly_report
from cloud.review.service import ReviewService
from seamline.clock import utcnow

router = APIRouter()


@router.get("/report", response_class=HTMLResponse)
async def report_page(
    request: Request, state: State, session: AdminPageSession, week: str | None = None
) -> HTMLResponse:
    report = await _report(state.service, week)
    return state.render(
        request,
        "report.html",
        {"session": session, "report": report, "report_json": json.dumps(report, indent=2)},
    )


@router.get("/report/charts/{name}.png")
async def report_chart(name: str, state: State, _: AdminApiSession, week: str | None = None) -> Response:
    from cloud.review.charts import CHARTS, render_chart

    if name not in CHARTS:
        raise Problem(404, "No such chart", f"charts: {', '.join(CHARTS)}")
    report = await _report(state.service, week)
    png = await asyncio.to_thread(render_chart, name, report)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})


@router.get("/api/report")
async def api_report(state: State, _: AdminApiSession, week: str | None = None) -> dict[str, Any]:
    return await _report(state.service, week)


async def _report(service: ReviewService, week: str | None) -> dict[str, Any]:
    """The report of ISO week ``week`` (e.g. 2025-W07; default this week); 400 problem if it is malformed."""
    try:
        start = iso_week(week) if week else iso_week(utcnow().strftime("%G-W%V"))
    except ValueError as exc:
        raise Problem(400, "Bad week", str(exc)) from exc
    report = await asyncio.to_thread(
        weekly_report, service.audit.engine, start, service.taxonomy, triggers=service.learning.triggers
    )
    report["learning_jobs"] = await asyncio.to_thread(recent_jobs, service.audit.engine)
    # the rollout over its own window (cloud.learning.promotion.window_days back from now), not the week's
    report["rollout"] = await asyncio.to_thread(
        rollout_report, service.audit.engine, service.learning.promotion, normal_id=service.taxonomy.normal.id
    )
    return report
