"""What a reviewer submits for a garment, checked against the garment and the taxonomy, and the final verdict
it becomes.

The console's form and its JSON API both produce a ``HumanDecision``; ``check_decision`` refuses anything that
does not fit the garment (unknown or missing crops, types outside the taxonomy, a box outside its view) with a
message naming the field, before anything is stored.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from seamline.config.taxonomy import Taxonomy
from seamline.contract.messages import DefectVerdict, ModelVersions, Verdict, VerdictTimestamps
from seamline.domain import Decision, Priority, Route
from seamline.errors import InputError

SeverityName = Literal["none", "minor", "moderate", "severe"]
# Region ids of boxes reviewers draw: "missed#1", ...
# ('#' is outside the crop-id alphabet, so no crop collides).
MISSED_PREFIX = "missed#"
MAX_MISSED = 32


class DecisionError(InputError, ValueError):
    """A submitted decision does not fit the garment; the message names the field."""


class CropLabel(BaseModel):
    """The reviewer's label for one crop the edge sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    crop_id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=48)
    severity: SeverityName


class MissedDefect(BaseModel):
    """A defect the detector missed: a box the reviewer drew on a view, in that view's pixels."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    view_index: int = Field(ge=0, le=3)
    box: tuple[float, float, float, float]
    type: str = Field(min_length=1, max_length=48)
    severity: SeverityName


class HumanDecision(BaseModel):
    """A reviewer's decision on one garment."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    decision: Literal["pass", "reject"]
    note: str | None = Field(default=None, max_length=2000)
    crops: tuple[CropLabel, ...] = ()
    missed: tuple[MissedDefect, ...] = Field(default=(), max_length=MAX_MISSED)


def check_decision(decision: HumanDecision, garment: dict[str, Any], taxonomy: Taxonomy) -> None:
    """Raise DecisionError unless ``decision`` labels exactly the garment's crops with valid labels."""
    expected = {c["crop_id"] for c in garment["crops"]}
    given = [c.crop_id for c in decision.crops]
    if len(set(given)) != len(given):
        raise DecisionError("crops: a crop is labelled twice")
    if unknown := sorted(set(given) - expected):
        raise DecisionError(f"crops: {unknown[0]!r} is not a crop of item {garment['item_id']!r}")
    if missing := sorted(expected - set(given)):
        raise DecisionError(
            f"crops: no label for crop {missing[0]!r} (label every crop; normal if it is fine)"
        )
    for i, label in enumerate(decision.crops):
        _check_label(f"crops[{i}]", label.type, label.severity, taxonomy, allow_normal=True)
    views = {int(v[0]): (int(v[1]), int(v[2])) for v in garment["views"]}  # view_index -> (width, height)
    for i, missed in enumerate(decision.missed):
        where = f"missed[{i}]"
        _check_label(where, missed.type, missed.severity, taxonomy, allow_normal=False)
        if missed.view_index not in views:
            raise DecisionError(
                f"{where}.view_index: the garment has no view {missed.view_index} (views {sorted(views)})"
            )
        width, height = views[missed.view_index]
        x1, y1, x2, y2 = missed.box
        if not all(math.isfinite(v) for v in missed.box) or not (
            0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        ):
            raise DecisionError(
                f"{where}.box: {list(missed.box)} is not a box inside the {width}x{height} view"
            )


def _check_label(where: str, type_id: str, severity: str, taxonomy: Taxonomy, *, allow_normal: bool) -> None:
    if type_id == taxonomy.normal.id:
        if not allow_normal:
            raise DecisionError(f"{where}.type: a missed defect cannot be {type_id!r}")
        if severity != "none":
            raise DecisionError(f"{where}.severity: {type_id!r} has severity 'none', not {severity!r}")
        return
    if type_id not in taxonomy.type_ids:
        raise DecisionError(
            f"{where}.type: {type_id!r} is not in the taxonomy ({', '.join(taxonomy.label_ids)})"
        )
    if severity == "none":
        raise DecisionError(f"{where}.severity: a {type_id!r} defect needs minor, moderate or severe")


def final_verdict(
    decision: HumanDecision,
    garment: dict[str, Any],
    ai_verdict: dict[str, Any],
    *,
    reviewer_id: str,
    priority: str,
    decided_at: datetime,
    normal_id: str,
) -> Verdict:
    """The garment's final verdict (source review).

    It holds the person's decision and labels, and the AI's model versions.
    """
    by_crop = {c["crop_id"]: c for c in garment["crops"]}
    region_decision = Decision.REJECT if decision.decision == "reject" else Decision.PASS
    reason = (decision.note or "").strip()[:500]
    defects = []
    for label in decision.crops:
        crop = by_crop[label.crop_id]
        defects.append(
            DefectVerdict(
                crop_id=label.crop_id,
                view_index=crop["view_index"],
                type=label.type,
                severity=label.severity,
                decision=Decision.PASS if label.type == normal_id else region_decision,
                reason=reason or "Checked by a reviewer.",
                box=tuple(crop["box"]),
                scores={},
            )
        )
    for i, missed in enumerate(decision.missed, 1):
        defects.append(
            DefectVerdict(
                crop_id=f"{MISSED_PREFIX}{i}",
                view_index=missed.view_index,
                type=missed.type,
                severity=missed.severity,
                decision=region_decision,
                reason=reason or "Marked by a reviewer: missed by the detector.",
                box=missed.box,
                scores={},
            )
        )
    timestamps = ai_verdict.get("timestamps", {})
    return Verdict(
        item_id=garment["item_id"],
        site_id=garment["site_id"],
        line_id=garment["line_id"],
        station_id=garment["station_id"],
        source="review",
        final=True,
        decision=Decision(decision.decision),
        route=Route.HUMAN,
        priority=Priority(priority),
        confidence=1.0,
        reviewer_id=reviewer_id,
        defects=tuple(defects),
        models=ModelVersions(**ai_verdict["models"]),
        timestamps=VerdictTimestamps(
            captured_at=timestamps.get("captured_at") or garment["captured_at"], decided_at=decided_at
        ),
    )
