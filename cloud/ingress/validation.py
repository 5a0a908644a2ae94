"""Check an incoming Garment (or GarmentDropped record) against the contract and the service's limits; pure,
no I/O.

Every problem is reported precisely (field path, value, limit) so an integrator can fix the sender. Crops are
decoded here too: a truncated JPEG or a decompression bomb is refused before anything is stored.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

from pydantic import Field

from cloud.records import CropRecord, DroppedGarmentRecord, GarmentRecord
from seamline.clock import utcnow
from seamline.config.base import StrictModel
from seamline.contract.mqtt import TOPIC_LEVEL
from seamline.imaging import ImageDecodeError, ImageTooLargeError, decode_image
from seamline.inspection.v1 import inspection_pb2 as pb

_ITEM_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CROP_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # crop ids name files, URLs and export images
_ENCODINGS = {pb.IMAGE_ENCODING_JPEG: "jpeg", pb.IMAGE_ENCODING_PNG: "png", pb.IMAGE_ENCODING_WEBP: "webp"}
_TIMING_KEY = re.compile(r"^[a-z_]{1,32}$")
MAX_EDGE_TIMINGS = 8
_BOX_SLACK = 1.0  # pixels a box may overhang its view (float rounding at the edge)
MAX_DROP_DETAIL_CHARS = 1000


class IngressLimits(StrictModel):
    """What the ingress accepts; the edge learns the first three from the ServerHello."""

    max_garment_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, title="Max garment bytes", description="Largest serialized Garment."
    )
    max_crops_per_garment: int = Field(
        default=64, ge=1, le=10_000, title="Max crops", description="Most crops in one garment."
    )
    max_in_flight: int = Field(
        default=64, ge=1, le=10_000, title="Max in flight", description="Window granted to each edge stream."
    )
    max_views: int = Field(
        default=4, ge=1, le=16, title="Max views", description="Most camera views per garment."
    )
    max_view_side: int = Field(
        default=16384, ge=64, title="Max view side", description="Largest frame width or height, pixels."
    )
    max_crop_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, title="Max crop bytes", description="Largest encoded crop."
    )
    max_crop_pixels: int = Field(
        default=4_000_000, ge=1024, title="Max crop pixels", description="Largest decoded crop (bomb guard)."
    )
    max_note_chars: int = Field(
        default=1000, ge=0, title="Max note length", description="Longest operator note."
    )
    max_sensor_readings: int = Field(
        default=32, ge=0, title="Max sensor readings", description="Most sensor key/value pairs."
    )


class GarmentInvalid(ValueError):
    """The garment breaks the contract or a limit; ``code`` is a RefusalCode, ``reason`` says exactly why."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_PURPOSES = {pb.GARMENT_PURPOSE_INSPECT: "inspect", pb.GARMENT_PURPOSE_AUDIT_PASSED: "audit_passed"}


def _names_nothing(value: str) -> bool:
    """True for ids made only of dots: legal characters, but as a file or URL path segment ``.`` is the folder
    itself and ``..`` its parent, so such an id cannot name a stored garment or crop."""
    return not value.strip(".")


def _invalid(reason: str) -> GarmentInvalid:
    return GarmentInvalid(pb.REFUSAL_CODE_INVALID, reason)


def _too_large(reason: str) -> GarmentInvalid:
    return GarmentInvalid(pb.REFUSAL_CODE_TOO_LARGE, reason)


def check_hello(hello: pb.AgentHello) -> None:
    """Raise ValueError if the stream's AgentHello is unusable."""
    if not hello.agent_id or len(hello.agent_id) > 128:
        raise ValueError("hello.agent_id must be 1-128 characters")
    for name in ("site_id", "line_id"):
        value = getattr(hello, name)
        if not TOPIC_LEVEL.match(value):
            raise ValueError(f"hello.{name} {value!r} must be 1-64 characters of a-z, 0-9 and '-'")
    if hello.contract_version not in ("", "v1"):
        raise ValueError(
            f"hello.contract_version {hello.contract_version!r} is not supported (this server speaks v1)"
        )


def _box(box: pb.Box, path: str, width: int, height: int) -> tuple[float, float, float, float]:
    values = (box.x1, box.y1, box.x2, box.y2)
    if not all(math.isfinite(v) for v in values):
        raise _invalid(f"{path}: coordinates must be finite, got {values}")
    x1, y1, x2, y2 = values
    if not (x2 > x1 and y2 > y1):
        raise _invalid(f"{path}: needs x2 > x1 and y2 > y1, got ({x1}, {y1}, {x2}, {y2})")
    if x1 < -_BOX_SLACK or y1 < -_BOX_SLACK or x2 > width + _BOX_SLACK or y2 > height + _BOX_SLACK:
        raise _invalid(f"{path}: ({x1}, {y1}, {x2}, {y2}) lies outside its view ({width}x{height})")
    return values


def _timestamp(ts, path: str) -> datetime:  # type: ignore[no-untyped-def]
    try:
        return ts.ToDatetime(tzinfo=timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise _invalid(f"{path}: not a valid timestamp ({exc})") from None


def _check_where(message: pb.Garment | pb.GarmentDropped, hello: pb.AgentHello) -> None:
    """The item id, site, line and station rules a Garment and a GarmentDropped share."""
    if not _ITEM_ID.match(message.item_id):
        raise _invalid(f"item_id {message.item_id[:140]!r} must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    if _names_nothing(message.item_id):
        raise _invalid(f"item_id {message.item_id!r} is only dots; it needs a letter, digit, '_', ':' or '-'")
    if message.site_id != hello.site_id or message.line_id != hello.line_id:
        raise _invalid(
            f"site_id/line_id {message.site_id!r}/{message.line_id!r} differ from the stream's hello "
            f"{hello.site_id!r}/{hello.line_id!r}"
        )
    if len(message.station_id) > 64:
        raise _invalid("station_id is longer than 64 characters")


def validate_garment(
    garment: pb.Garment, hello: pb.AgentHello, limits: IngressLimits, *, agent_id: str
) -> GarmentRecord:
    """A checked ``GarmentRecord`` for ``garment``, or GarmentInvalid naming the first problem."""
    size = garment.ByteSize()
    if size > limits.max_garment_bytes:
        raise _too_large(f"garment is {size} bytes, over the limit of {limits.max_garment_bytes}")
    _check_where(garment, hello)
    if not garment.detector_model_version or len(garment.detector_model_version) > 128:
        raise _invalid("detector_model_version must be 1-128 characters")
    if not garment.HasField("capture_time"):
        raise _invalid("capture_time is missing")
    captured_at = _timestamp(garment.capture_time, "capture_time")
    deadline_at = _timestamp(garment.deadline, "deadline") if garment.HasField("deadline") else None
    if garment.HasField("operator_note") and len(garment.operator_note) > limits.max_note_chars:
        raise _invalid(
            f"operator_note is {len(garment.operator_note)} characters, over {limits.max_note_chars}"
        )
    if len(garment.sensor_readings) > limits.max_sensor_readings:
        raise _too_large(f"{len(garment.sensor_readings)} sensor readings, over {limits.max_sensor_readings}")
    for key, value in garment.sensor_readings.items():
        if not key or len(key) > 64 or len(value) > 256:
            raise _invalid(f"sensor_readings[{key[:64]!r}]: keys 1-64 and values up to 256 characters")

    if len(garment.edge_timings_ms) > MAX_EDGE_TIMINGS:
        raise _invalid(f"{len(garment.edge_timings_ms)} edge timings, over {MAX_EDGE_TIMINGS}")
    for key, value in garment.edge_timings_ms.items():
        if not _TIMING_KEY.match(key) or not math.isfinite(value) or value < 0:
            raise _invalid(
                f"edge_timings_ms[{key[:32]!r}] = {value}: keys 1-32 of a-z and _, values finite and >= 0"
            )

    if not 1 <= len(garment.views) <= limits.max_views:
        raise _invalid(f"{len(garment.views)} views; a garment has 1 to {limits.max_views}")
    views: dict[int, tuple[int, int]] = {}
    for i, view in enumerate(garment.views):
        if view.view_index in views:
            raise _invalid(f"views[{i}].view_index {view.view_index} is repeated")
        if view.view_index >= limits.max_views:
            raise _invalid(f"views[{i}].view_index {view.view_index} must be below {limits.max_views}")
        if not (0 < view.width <= limits.max_view_side and 0 < view.height <= limits.max_view_side):
            raise _invalid(
                f"views[{i}]: size {view.width}x{view.height} must be 1..{limits.max_view_side} per side"
            )
        views[view.view_index] = (view.width, view.height)

    purpose = _PURPOSES.get(garment.purpose)
    if purpose is None:
        raise _invalid(f"purpose {garment.purpose} is not a GarmentPurpose")
    if not garment.crops:
        raise _invalid(
            "a garment sent to the cloud needs at least one crop (garments with none pass at the edge; "
            "an audit sample of a passed garment carries its views as crops)"
        )
    if len(garment.crops) > limits.max_crops_per_garment:
        raise _too_large(f"{len(garment.crops)} crops, over the limit of {limits.max_crops_per_garment}")
    crops = []
    seen: set[str] = set()
    for i, crop in enumerate(garment.crops):
        path = f"crops[{i}]"
        if not _CROP_ID.match(crop.crop_id):
            raise _invalid(
                f"{path}.crop_id {crop.crop_id[:70]!r} must be 1-64 characters of A-Z a-z 0-9 . _ : -"
            )
        if _names_nothing(crop.crop_id):
            raise _invalid(
                f"{path}.crop_id {crop.crop_id!r} is only dots; it needs a letter, digit, '_', ':' or '-'"
            )
        if crop.crop_id in seen:
            raise _invalid(f"{path}.crop_id {crop.crop_id!r} is repeated")
        seen.add(crop.crop_id)
        if crop.view_index not in views:
            raise _invalid(f"{path}.view_index {crop.view_index} names no view (views: {sorted(views)})")
        width, height = views[crop.view_index]
        box = _box(crop.box, f"{path}.box", width, height)
        crop_box = (
            _box(crop.crop_box, f"{path}.crop_box", width, height) if crop.HasField("crop_box") else box
        )
        score = crop.detector_score
        if not math.isfinite(score) or not 0.0 <= score <= 1.0:
            raise _invalid(f"{path}.detector_score {score} must be a number in [0, 1]")
        if len(crop.detector_label) > 64:
            raise _invalid(f"{path}.detector_label is longer than 64 characters")
        if crop.encoding not in _ENCODINGS:
            known = crop.encoding in pb.ImageEncoding.values()
            name = pb.ImageEncoding.Name(crop.encoding) if known else crop.encoding
            raise GarmentInvalid(
                pb.REFUSAL_CODE_UNDECODABLE_IMAGE,
                f"{path}.encoding {name} is not supported (JPEG, PNG or WEBP)",
            )
        if len(crop.image) > limits.max_crop_bytes:
            raise _too_large(
                f"{path}.image is {len(crop.image)} bytes, over the limit of {limits.max_crop_bytes}"
            )
        if crop.HasField("operator_note") and len(crop.operator_note) > limits.max_note_chars:
            raise _invalid(f"{path}.operator_note is longer than {limits.max_note_chars} characters")
        encoding = _ENCODINGS[crop.encoding]
        try:
            pixels = decode_image(crop.image, expected=encoding, max_pixels=limits.max_crop_pixels)
        except ImageTooLargeError as exc:  # a decompression bomb, or simply over the pixel limit
            raise _too_large(f"{path}.image: {exc.reason}") from None
        except ImageDecodeError as exc:
            raise GarmentInvalid(pb.REFUSAL_CODE_UNDECODABLE_IMAGE, f"{path}.image: {exc.reason}") from None
        crops.append(
            CropRecord(
                crop_id=crop.crop_id,
                view_index=crop.view_index,
                box=box,
                crop_box=crop_box,
                detector_score=float(score),
                detector_label=crop.detector_label or "defect",
                encoding=encoding,
                image=crop.image,
                width=int(pixels.shape[1]),
                height=int(pixels.shape[0]),
                operator_note=crop.operator_note if crop.HasField("operator_note") else None,
            )
        )
    return GarmentRecord(
        item_id=garment.item_id,
        site_id=garment.site_id,
        line_id=garment.line_id,
        station_id=garment.station_id,
        agent_id=agent_id,
        captured_at=captured_at,
        deadline_at=deadline_at,
        received_at=utcnow(),
        detector_version=garment.detector_model_version,
        views=tuple((i, *views[i]) for i in sorted(views)),
        crops=tuple(crops),
        operator_note=garment.operator_note if garment.HasField("operator_note") else None,
        sensor_readings=tuple(sorted(garment.sensor_readings.items())),
        edge_timings_ms=tuple(sorted(garment.edge_timings_ms.items())),
        purpose=purpose,
    )


def _enum_name(enum: Any, number: int, path: str) -> str:
    """The stored name of a required enum field: ``DROP_REASON_DETECTOR_BEHIND`` -> ``detector_behind``.

    UNSPECIFIED (0) is refused: the sender did not say. A number this service's contract does not list yet is
    kept as ``unknown_<n>`` instead of refused, so a record from a newer edge still reaches the audit trail.
    """
    if number == 0:
        raise _invalid(f"{path} is missing ({enum.Name(0)})")
    if number not in enum.values():
        return f"unknown_{number}"
    prefix = enum.Name(0).removesuffix("UNSPECIFIED")
    return enum.Name(number).removeprefix(prefix).lower()


def validate_drop(dropped: pb.GarmentDropped, hello: pb.AgentHello, *, agent_id: str) -> DroppedGarmentRecord:
    """A checked ``DroppedGarmentRecord`` for a ``GarmentDropped`` record, or GarmentInvalid (INVALID) naming
    the first problem."""
    _check_where(dropped, hello)
    if not dropped.HasField("capture_time"):
        raise _invalid("capture_time is missing")
    captured_at = _timestamp(dropped.capture_time, "capture_time")
    deadline_at = _timestamp(dropped.deadline, "deadline") if dropped.HasField("deadline") else None
    dropped_at = _timestamp(dropped.dropped_at, "dropped_at") if dropped.HasField("dropped_at") else None
    reason = _enum_name(pb.DropReason, dropped.reason, "reason")
    line_action = _enum_name(pb.LineAction, dropped.line_action, "line_action")
    if len(dropped.detail) > MAX_DROP_DETAIL_CHARS:
        raise _invalid(f"detail is {len(dropped.detail)} characters, over {MAX_DROP_DETAIL_CHARS}")
    return DroppedGarmentRecord(
        item_id=dropped.item_id,
        site_id=dropped.site_id,
        line_id=dropped.line_id,
        station_id=dropped.station_id,
        agent_id=agent_id,
        captured_at=captured_at,
        deadline_at=deadline_at,
        dropped_at=dropped_at,
        received_at=utcnow(),
        reason=reason,
        detail=dropped.detail,
        line_action=line_action,
    )
