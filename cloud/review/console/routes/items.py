"""One review item: its page and the decision form, its crops' images, and the same as JSON for scripts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from cloud.review.auth import Session
from cloud.review.console.deps import ApiPostSession, ApiSession, PagePostSession, PageSession, State
from cloud.review.console.problems import Problem
from cloud.review.decision import MISSED_PREFIX, CropLabel, DecisionError, HumanDecision, MissedDefect
from cloud.review.queue import ReviewError, ReviewItem
from cloud.review.service import ReviewService

router = APIRouter()


# pages ------------------------------------------------------------------------------------------------------


@router.get("/items/{item_id}", response_class=HTMLResponse)
async def item_page(request: Request, item_id: str, state: State, session: PageSession) -> HTMLResponse:
    detail = await item_detail(state.service, item_id)
    return state.render(request, "item.html", _item_context(state.service, session, detail, error=None))


@router.post("/items/{item_id}/decision")
async def decide_page(request: Request, item_id: str, state: State, session: PagePostSession) -> Response:
    service = state.service
    form = await request.form()
    _same_reviewer(session, form.get("reviewer_id"))
    detail = await item_detail(service, item_id)
    try:
        decision = _decision_from_form(form, detail["garment"])
        await asyncio.to_thread(service.decide, session.reviewer_id, item_id, decision)
    except (DecisionError, ValidationError) as exc:
        context = _item_context(service, session, detail, error=_message(exc))
        return state.render(request, "item.html", context, 422)
    except ReviewError as exc:
        context = _item_context(service, session, await item_detail(service, item_id), error=str(exc))
        return state.render(request, "item.html", context, exc.status)
    if form.get("then") == "next":
        item = await asyncio.to_thread(service.take_next, session.reviewer_id)
        if item is not None:
            return RedirectResponse(f"/items/{quote(item.item_id)}", status_code=303)
        return RedirectResponse("/?empty=1", status_code=303)
    return RedirectResponse("/", status_code=303)


@router.post("/items/{item_id}/release")
async def release_page(item_id: str, state: State, session: PagePostSession) -> RedirectResponse:
    await _act(state.service.release, session.reviewer_id, item_id)
    return RedirectResponse("/", status_code=303)


@router.get("/crops/{item_id}/{crop_id}")
async def crop_image(item_id: str, crop_id: str, state: State, _: ApiSession) -> Response:
    detail = await item_detail(state.service, item_id)
    crop = next((c for c in detail["garment"]["crops"] if c["crop_id"] == crop_id), None)
    if crop is None:
        raise Problem(404, "No such crop", f"item {item_id!r} has no crop {crop_id!r}")
    data = await asyncio.to_thread(state.service.crop_store.get, crop["uri"])
    return Response(
        data, media_type=f"image/{crop['encoding']}", headers={"Cache-Control": "private, max-age=3600"}
    )


# JSON API ---------------------------------------------------------------------------------------------------


@router.get("/api/items/{item_id}")
async def api_item(item_id: str, state: State, _: ApiSession) -> dict[str, Any]:
    return public_detail(await item_detail(state.service, item_id))


@router.post("/api/items/{item_id}/decision")
async def api_decide(request: Request, item_id: str, state: State, session: ApiPostSession) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise Problem(400, "Malformed JSON", str(exc)) from exc
    if isinstance(body, dict):
        _same_reviewer(session, body.pop("reviewer_id", None))
    try:
        decision = HumanDecision.model_validate(body)
        result = await asyncio.to_thread(state.service.decide, session.reviewer_id, item_id, decision)
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


@router.post("/api/items/{item_id}/release")
async def api_release(item_id: str, state: State, session: ApiPostSession) -> dict[str, Any]:
    item = await _act(state.service.release, session.reviewer_id, item_id)
    return {"item_id": item.item_id, "status": item.status}


# helpers (item_detail and public_detail serve the queue's "take next" too) ----------------------------------


async def item_detail(service: ReviewService, item_id: str) -> dict[str, Any]:
    """The item's garment, review state, AI verdict and decision; 404 problem if there is no such item."""
    try:
        return await asyncio.to_thread(service.queue.detail, item_id)
    except ReviewError as exc:
        raise Problem(exc.status, "No such review item", str(exc)) from exc


def public_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """What the JSON API shows of an item (no storage URIs), as plain JSON values."""
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
                "kind": review.kind,
                "blind": review.blind,
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
                # an audit sample is reviewed blind: the AI's answer only once a person has decided
                "ai_verdict": None if review.blind else detail["ai_verdict"],
                "decision": detail["decision"],
            },
            default=str,
        )
    )


async def _act(action: Callable[[str, str], ReviewItem], reviewer_id: str, item_id: str) -> ReviewItem:
    try:
        return await asyncio.to_thread(action, reviewer_id, item_id)
    except ReviewError as exc:
        raise Problem(exc.status, "Cannot do that with this item", str(exc)) from exc


def _item_context(
    service: ReviewService, session: Session, detail: dict[str, Any], *, error: str | None
) -> dict[str, Any]:
    taxonomy = service.taxonomy
    review = detail["review"]
    ai = {} if review.blind else detail["ai_verdict"]  # blind: nothing of the AI's answer, not even defaults
    ai_by_crop = {d["crop_id"]: d for d in ai.get("defects", [])}
    decided = detail["decision"]
    human_by_crop = {d["crop_id"]: d for d in (decided["verdict"]["defects"] if decided else [])}
    return {
        "session": session,
        "review": review,
        "garment": detail["garment"],
        "ai": ai,
        "blind": review.blind,
        "ai_by_crop": ai_by_crop,
        "human_by_crop": human_by_crop,
        "decision": decided,
        "error": error,
        "missed": [d for d in human_by_crop.values() if d["crop_id"].startswith(MISSED_PREFIX)],
        "mine": review.status == "in_review" and review.claimed_by == session.reviewer_id,
        "labels": [taxonomy.normal.id, *taxonomy.type_ids],
        "defect_types": list(taxonomy.type_ids),
        "views": [
            {"index": int(v[0]), "width": int(v[1]), "height": int(v[2])} for v in detail["garment"]["views"]
        ],
    }


def _same_reviewer(session: Session, claimed: Any) -> None:
    if claimed not in (None, "", session.reviewer_id):
        raise Problem(
            403, "Cannot act as another reviewer", f"this session belongs to {session.reviewer_id!r}"
        )


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


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        return f"{where}: {first['msg']}"
    return str(exc)
