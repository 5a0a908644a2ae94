"""The ``edge:`` section of a Seamline configuration file: what the edge agent runs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from edge.crops import CropConfig
from edge.detectors import DetectorConfig
from edge.detectors.release import ReleaseConfig
from edge.sources import DropStrategy, SourceConfig
from edge.sources.synthetic import SyntheticSourceConfig
from edge.uplink.client import UplinkConfig
from edge.uplink.spool import FullPolicy
from seamline.config.base import StrictModel


class LineTimingConfig(StrictModel):
    """Where the diverter is: each garment's deadline comes from belt speed and distance."""

    belt_speed_m_s: float = Field(
        default=0.5, gt=0, le=10, title="Belt speed (m/s)", description="Conveyor speed."
    )
    distance_to_diverter_m: float = Field(
        default=1.5,
        gt=0,
        le=100,
        title="Distance to diverter (m)",
        description="From the camera station to the diverter.",
    )
    actuation_margin_s: float = Field(
        default=0.3,
        ge=0,
        le=10,
        title="Actuation margin (s)",
        description="Time the PLC and diverter need before the garment arrives.",
    )

    @property
    def budget_s(self) -> float:
        """Seconds from capture until the line command must be out."""
        return max(0.0, self.distance_to_diverter_m / self.belt_speed_m_s - self.actuation_margin_s)

    @model_validator(mode="after")
    def _positive_budget(self) -> LineTimingConfig:
        if self.budget_s <= 0:
            raise ValueError(
                "distance / speed must exceed the actuation margin: no time is left for a verdict"
            )
        return self


class SpoolConfig(StrictModel):
    """The store-and-forward spool."""

    path: Path = Field(
        default=Path("edge/spool.db"),
        title="Spool file",
        description="SQLite file, relative to storage.data_dir.",
    )
    max_items: int = Field(default=100_000, ge=0, title="Max garments", description="0 = unbounded.")
    max_bytes: int = Field(default=2 * 1024**3, ge=0, title="Max bytes", description="0 = unbounded.")
    full_policy: FullPolicy = Field(
        default=FullPolicy.REJECT_NEW,
        title="When full",
        description="reject_new (divert the new garment to review) or drop_oldest.",
    )
    retention_h: float = Field(
        default=168.0,
        gt=0,
        title="Retention (h)",
        description="Settled line commands (acknowledged or expired) leave the command ledger, and poison "
        "garments set aside leave the spool, this long after they were decided / set aside.",
    )


class PassedAuditConfig(StrictModel):
    """A sampled share of the garments the edge passes itself (nothing detected) still goes to a person."""

    passed_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        title="Audit share of passed garments",
        description=(
            "Share of garments passed at the edge whose views also go to the cloud, downscaled, for a blind "
            "review: how many defects the detector misses (0: none)."
        ),
    )
    view_max_side: int = Field(
        default=640, ge=64, le=4096, title="View size", description="Longest side of a sent view, pixels."
    )
    jpeg_quality: int = Field(default=80, ge=30, le=100, title="JPEG quality", description="Of sent views.")


class EdgeConfig(StrictModel):
    """The edge agent: source, detector, crops, uplink, line timing."""

    agent_id: str | None = Field(
        default=None,
        title="Agent id",
        description="Unique id of this agent; default <site>-<line>-<station>.",
    )
    source: SourceConfig = Field(
        default_factory=SyntheticSourceConfig,
        title="Source",
        description="Where garments come from (type: folder, video, synthetic).",
    )
    detector: DetectorConfig = Field(
        title="Detector", description="The detector runtime (type: onnxruntime, tensorrt, torch)."
    )
    crops: CropConfig = Field(
        default_factory=CropConfig, title="Crops", description="How regions become crops."
    )
    uplink: UplinkConfig = Field(
        default_factory=UplinkConfig, title="Uplink", description="The gRPC link to the cloud."
    )
    spool: SpoolConfig = Field(
        default_factory=SpoolConfig, title="Spool", description="Store-and-forward queue."
    )
    timing: LineTimingConfig = Field(
        default_factory=LineTimingConfig, title="Line timing", description="Deadlines per garment."
    )
    release: ReleaseConfig = Field(
        default_factory=ReleaseConfig,
        title="Detector releases",
        description="Take signed detector releases announced for the site (off without a public key).",
    )
    audit: PassedAuditConfig = Field(
        default_factory=PassedAuditConfig,
        title="Audit of passed garments",
        description="A share of garments passed at the edge also goes to review, to measure missed defects.",
    )
    buffer_capacity: int = Field(
        default=8, ge=1, le=1000, title="Buffer", description="Garments waiting between camera and detector."
    )
    drop_strategy: DropStrategy = Field(
        default=DropStrategy.DROP_OLDEST,
        title="When behind",
        description="drop_oldest (live cameras) or block (files).",
    )
    metrics_port: int | None = Field(
        default=9108,
        ge=0,
        le=65535,
        title="Metrics port",
        description="Prometheus /metrics port on 127.0.0.1... set null to disable, 0 for any free port.",
    )
    metrics_host: str = Field(
        default="127.0.0.1", title="Metrics host", description="Address the metrics endpoint binds."
    )

    @model_validator(mode="after")
    def _releases_run_on_onnx(self) -> EdgeConfig:
        if self.release.public_key is not None and self.detector.type == "torch":
            raise ValueError(
                "release.public_key: detector releases are ONNX artefacts; run them with the onnxruntime or "
                "tensorrt detector, not torch"
            )
        return self
