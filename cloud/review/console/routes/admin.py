"""For admins: reviewer accounts (add, deactivate) and downloads of the verified store's exports."""

from __future__ import annotations

import asyncio
import io
import tempfile
import zipfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud.review.auth import ROLES, ReviewerError
from cloud.review.console.deps import AdminApiSession, AdminPagePostSession, AdminPageSession, State
from cloud.review.console.problems import Problem
from cloud.review.export import FORMATS, ExportError, export_verified

router = APIRouter()


@router.get("/admin/reviewers", response_class=HTMLResponse)
async def reviewers_page(request: Request, state: State, session: AdminPageSession) -> HTMLResponse:
    accounts = await asyncio.to_thread(state.service.reviewers.accounts)
    return state.render(
        request,
        "reviewers.html",
        {"session": session, "accounts": accounts, "roles": ROLES, "formats": FORMATS},
    )


@router.post("/admin/reviewers")
async def add_reviewer(request: Request, state: State, _: AdminPagePostSession) -> RedirectResponse:
    form = await request.form()
    role = str(form.get("role", "reviewer"))
    try:
        await asyncio.to_thread(
            state.service.reviewers.add,
            str(form.get("reviewer_id", "")).strip(),
            str(form.get("password", "")),
            str(form.get("display_name", "")).strip() or None,
            role,  # type: ignore[arg-type]
        )
    except ReviewerError as exc:
        raise Problem(422, "Cannot add the reviewer", str(exc)) from exc
    return RedirectResponse("/admin/reviewers", status_code=303)


@router.post("/admin/reviewers/{reviewer_id}/deactivate")
async def deactivate_reviewer(
    reviewer_id: str, state: State, session: AdminPagePostSession
) -> RedirectResponse:
    if reviewer_id == session.reviewer_id:
        raise Problem(409, "Cannot deactivate yourself", "Another admin must do it (or the CLI).")
    try:
        await asyncio.to_thread(state.service.reviewers.set_active, reviewer_id, False)
    except ReviewerError as exc:
        raise Problem(404, "No such reviewer", str(exc)) from exc
    return RedirectResponse("/admin/reviewers", status_code=303)


@router.get("/admin/export")
async def export(state: State, _: AdminApiSession, format: str = "jsonl") -> Response:
    """The verified store in ``format`` (coco, jsonl, labelstudio) with its crops, as one zip."""
    if format not in FORMATS:
        raise Problem(400, "Unknown export format", f"format: one of {', '.join(FORMATS)}")
    service = state.service

    def build() -> bytes:
        with tempfile.TemporaryDirectory(prefix="seamline-export-") as tmp:
            out = Path(tmp) / "export"
            export_verified(service.audit.engine, service.crop_store, service.taxonomy, out, format)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(out.rglob("*")):
                    if path.is_file():
                        archive.write(path, path.relative_to(out).as_posix())
            return buffer.getvalue()

    try:
        data = await asyncio.to_thread(build)
    except ExportError as exc:
        raise Problem(400, "Export failed", str(exc)) from exc
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="seamline-verified-{format}.zip"'},
    )
