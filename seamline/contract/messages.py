"""Typed builders for the MQTT payloads (verdicts, line commands, review events).

These pydantic models produce exactly the JSON the schemas in ``protos/.../mqtt`` describe; the test suite
validates their output against those schemas, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from seamline.clock import utcnow
from seamline.domain import Decision, LineAction, Priority, Route

SCHEMA_VERSION = "1.0"
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in source-frame pixels


def new_id() -> str:
    """A fresh random id for a message (32 hex characters)."""
    return uuid.uuid4().hex


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)

    def to_json(self) -> str:
        """The wire form: compact JSON, timestamps in ISO 8601 with offset."""
        return self.model_dump_json(exclude_none=False)


class DefectVerdict(_Payload):
    """The classification of one crop inside a verdict."""

    crop_id: str
    view_index: int = Field(ge=0, le=3)
    type: str
    severity: Literal["none", "minor", "moderate", "severe"]
    decision: Decision
    reason: str = Field(max_length=500)
    box: Box
    scores: dict[str, float] = Field(default_factory=dict)


class ModelVersions(_Payload):
    detector: str
    classifier: str | None = None
    prompt: str | None = None
    policy: str | None = None


class VerdictRollout(_Payload):
    """The classifier rollout a cloud verdict was decided under (see verdict.schema.json)."""

    revision: int = Field(ge=0)
    mode: Literal["off", "shadow", "canary", "promoted", "rolled_back"]
    share: float = Field(ge=0.0, le=1.0)
    arm: Literal["champion", "candidate"]
    candidate: str | None = None
    fallback: bool = False


class VerdictTimestamps(_Payload):
    captured_at: datetime
    decided_at: datetime
    deadline_at: datetime | None = None


class VerdictError(_Payload):
    code: str = Field(max_length=64)
    message: str = Field(max_length=2000)


class Verdict(_Payload):
    """A decision on one garment (see verdict.schema.json for each field's meaning)."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    verdict_id: str = Field(default_factory=new_id)
    item_id: str
    site_id: str
    line_id: str
    station_id: str
    source: Literal["edge", "cloud", "review"]
    final: bool
    decision: Decision
    route: Route
    priority: Priority
    confidence: float = Field(ge=0.0, le=1.0)
    reviewer_id: str | None = None
    defects: tuple[DefectVerdict, ...] = ()
    models: ModelVersions
    rollout: VerdictRollout | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    timestamps: VerdictTimestamps
    error: VerdictError | None = None


class LineCommand(_Payload):
    """The one diverter command for a garment (see line_command.schema.json)."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    command_id: str = Field(default_factory=new_id)
    item_id: str
    site_id: str
    line_id: str
    station_id: str
    action: LineAction
    cause: Literal["verdict", "no_detection", "deadline_missed", "refused", "edge_error"]
    verdict_id: str | None = None
    issued_at: datetime = Field(default_factory=utcnow)
    deadline_at: datetime | None = None


class UplinkStatus(_Payload):
    connected: bool
    refused: bool
    last_error: str | None = None


class SpoolStatus(_Payload):
    waiting: int
    set_aside: int


class CameraReport(_Payload):
    """One live camera of an edge agent, in its status."""

    camera_id: str
    url: str  # credentials masked
    state: Literal["connecting", "running", "reconnecting", "failed", "closed"]
    failures: int = Field(ge=0)
    reconnects: int = Field(ge=0)
    last_error: str | None = Field(default=None, max_length=1000)


class DetectorReport(_Payload):
    """What detects a line's garments, in its edge status."""

    version: str
    serial: int = Field(ge=0)
    release: str | None = None
    release_share: float | None = Field(default=None, ge=0.0, le=1.0)
    on_probation: bool = False
    last_refusal: str | None = Field(default=None, max_length=1000)
    last_revert: str | None = Field(default=None, max_length=1000)


class EdgeStatus(_Payload):
    """An edge agent's health, retained (see edge_status.schema.json)."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    agent_id: str
    site_id: str
    line_id: str
    station_id: str
    updated_at: datetime = Field(default_factory=utcnow)
    uplink: UplinkStatus
    spool: SpoolStatus
    commands_expired: int
    detector: DetectorReport | None = None
    cameras: tuple[CameraReport, ...] = ()
    problems: tuple[str, ...] = ()


class ReviewEvent(_Payload):
    """A change in the review queue (see review_event.schema.json)."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    event_id: str = Field(default_factory=new_id)
    type: Literal["new", "update", "end"]
    review_id: str
    item_id: str
    site_id: str
    line_id: str
    status: Literal["queued", "in_review", "decided", "expired"]
    priority: Literal["high", "medium", "low"]
    reviewer_id: str | None = None
    decision: Literal["pass", "reject"] | None = None
    verdict_id: str | None = None
    at: datetime = Field(default_factory=utcnow)
