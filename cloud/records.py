"""The cloud's view of an accepted garment (what storage keeps and the classifier reads), and of one the edge
dropped without inspecting it.

These types sit below every cloud package: ingress builds them, storage keeps and reloads them, the
classifier, routing and publishing read them. They import nothing from the cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CropRecord:
    """One crop of an accepted garment."""

    crop_id: str
    view_index: int
    box: tuple[float, float, float, float]  # detected region, source pixels
    crop_box: tuple[float, float, float, float]  # padded region actually cut out
    detector_score: float
    detector_label: str
    encoding: str  # "jpeg" | "png" | "webp"
    image: bytes
    width: int
    height: int
    operator_note: str | None = None
    uri: str = ""  # where the crop store keeps it; set once stored


@dataclass(frozen=True)
class GarmentRecord:
    """An accepted garment with its crops."""

    item_id: str
    site_id: str
    line_id: str
    station_id: str
    agent_id: str
    captured_at: datetime
    deadline_at: datetime | None
    received_at: datetime
    detector_version: str
    views: tuple[tuple[int, int, int], ...]  # (view_index, width, height)
    crops: tuple[CropRecord, ...]
    operator_note: str | None = None
    sensor_readings: tuple[tuple[str, str], ...] = ()
    edge_timings_ms: tuple[tuple[str, float], ...] = ()  # informational; not kept in the audit store
    # "inspect" (crops = detections, to classify) or "audit_passed" (the edge passed it; crops = its views,
    # downscaled, for a blind review of what the detector may have missed)
    purpose: str = "inspect"


@dataclass(frozen=True)
class DroppedGarmentRecord:
    """A garment the edge dropped without inspecting it (a ``GarmentDropped`` record): stored for the audit
    trail and reports, never classified."""

    item_id: str
    site_id: str
    line_id: str
    station_id: str
    agent_id: str
    captured_at: datetime
    deadline_at: datetime | None
    dropped_at: datetime | None  # on the edge's clock; None if the edge did not say
    received_at: datetime
    reason: str  # "detector_behind" | "edge_error" | "unknown_<n>" for a reason newer than this service
    detail: str
    line_action: str  # LineCommand.action: "divert_review" (or "pass", "reject", "unknown_<n>")
