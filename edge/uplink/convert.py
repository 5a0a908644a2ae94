"""Edge domain objects -> contract messages. The one place on the edge that builds protos."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from edge.crops import Crop
from seamline.domain import LineAction
from seamline.inspection.v1 import inspection_pb2 as pb

# Why a garment was dropped, in the agent's words -> the contract's DropReason.
DROP_REASONS = {
    "detector_behind": pb.DROP_REASON_DETECTOR_BEHIND,
    "edge_error": pb.DROP_REASON_EDGE_ERROR,
}
_LINE_ACTIONS = {
    LineAction.PASS: pb.LINE_ACTION_PASS,
    LineAction.DIVERT_REVIEW: pb.LINE_ACTION_DIVERT_REVIEW,
    LineAction.REJECT: pb.LINE_ACTION_REJECT,
}


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts


def garment_message(
    *,
    item_id: str,
    site_id: str,
    line_id: str,
    station_id: str,
    captured_at: datetime,
    deadline_at: datetime,
    view_sizes: list[tuple[int, int]],
    camera_ids: list[str],
    crops: list[Crop],
    detector_version: str,
    operator_note: str | None = None,
    sensor_readings: dict[str, str] | None = None,
    edge_timings_ms: dict[str, float] | None = None,
    purpose: int = pb.GARMENT_PURPOSE_INSPECT,
) -> pb.Garment:
    """The ``Garment`` message for one garment; ``view_sizes`` are (height, width)."""
    message = pb.Garment(
        item_id=item_id,
        site_id=site_id,
        line_id=line_id,
        station_id=station_id,
        capture_time=timestamp(captured_at),
        deadline=timestamp(deadline_at),
        views=[
            pb.View(view_index=i, width=w, height=h, camera_id=camera)
            for i, ((h, w), camera) in enumerate(zip(view_sizes, camera_ids))
        ],
        crops=[
            pb.Crop(
                crop_id=c.crop_id,
                view_index=c.view_index,
                box=pb.Box(x1=c.box[0], y1=c.box[1], x2=c.box[2], y2=c.box[3]),
                crop_box=pb.Box(x1=c.crop_box[0], y1=c.crop_box[1], x2=c.crop_box[2], y2=c.crop_box[3]),
                detector_score=c.score,
                detector_label=c.label,
                image=c.jpeg,
                encoding=pb.IMAGE_ENCODING_JPEG,
            )
            for c in crops
        ],
        detector_model_version=detector_version,
        sensor_readings=sensor_readings or {},
        edge_timings_ms=edge_timings_ms or {},
        purpose=purpose,
    )
    if operator_note is not None:
        message.operator_note = operator_note
    return message


def dropped_message(
    *,
    item_id: str,
    site_id: str,
    line_id: str,
    station_id: str,
    captured_at: datetime,
    deadline_at: datetime | None,
    dropped_at: datetime,
    reason: str,
    detail: str,
    line_action: LineAction,
) -> pb.GarmentDropped:
    """The ``GarmentDropped`` record of a garment the edge dropped; ``reason`` is a key of DROP_REASONS."""
    message = pb.GarmentDropped(
        item_id=item_id,
        site_id=site_id,
        line_id=line_id,
        station_id=station_id,
        capture_time=timestamp(captured_at),
        dropped_at=timestamp(dropped_at),
        reason=DROP_REASONS[reason],
        detail=detail[:1000],  # the contract's limit: a long exception text is cut, not refused
        line_action=_LINE_ACTIONS[LineAction(line_action)],
    )
    if deadline_at is not None:
        message.deadline.CopyFrom(timestamp(deadline_at))
    return message
