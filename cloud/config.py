"""The ``cloud:`` section of a Seamline configuration file: what the cloud service runs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from cloud.classifiers.config import ClassifierRolloutConfig, VllmClassifierConfig
from cloud.ingress.validation import IngressLimits
from cloud.learning.config import LearningConfig
from cloud.routing.audit import AuditSamplingConfig
from cloud.routing.policy import RoutingPolicyConfig
from seamline.config.base import StrictModel
from seamline.config.paths import ConfigPath
from seamline.contract.mqtt import check_level


class LocalVllmConfig(StrictModel):
    """Start a vLLM server on this machine.

    The single-machine default; production points ``classifier.base_url`` at a URL instead.
    """

    model: ConfigPath = Field(
        title="Model directory", description="A local Qwen2.5-VL checkpoint (or the demo/tiny model)."
    )
    port: int = Field(
        default=8000, ge=1, le=65535, title="Port", description="Where the local server listens (127.0.0.1)."
    )
    ready_timeout_s: float = Field(
        default=300.0,
        gt=0,
        title="Ready timeout (s)",
        description="How long to wait for the server to load the model.",
    )


class ServedLine(StrictModel):
    """One conveyor line whose edge agent the cloud service accepts."""

    site_id: str = Field(title="Site id", description="The site, as the line's edge agent names it.")
    line_id: str = Field(title="Line id", description="The line, as its edge agent names it.")

    @field_validator("site_id", "line_id")
    @classmethod
    def _level(cls, value: str, info: ValidationInfo) -> str:
        return check_level(value, info.field_name or "id")


class CloudConfig(StrictModel):
    """The cloud classifier service."""

    lines: list[ServedLine] = Field(
        default_factory=list,
        title="Served lines",
        description=(
            "The site/line pairs this service serves: it accepts streams only from their edge agents and "
            "publishes verdicts only on their topics; any other line's hello is refused with "
            "PERMISSION_DENIED. `seamline cloud serve` needs at least one."
        ),
    )

    crop_store: str = Field(
        default="crops",
        title="Crop store",
        description=(
            "Directory (relative to storage.data_dir), file:// URL, or "
            "s3://bucket/prefix?endpoint=...&region=... for an S3-compatible store."
        ),
    )
    audit_url: str | None = Field(
        default=None,
        title="Audit database",
        description="SQLAlchemy URL (postgresql+psycopg://...); default SQLite under storage.data_dir.",
    )
    limits: IngressLimits = Field(
        default_factory=IngressLimits, title="Ingress limits", description="What garments are accepted."
    )
    classifier: VllmClassifierConfig = Field(
        default_factory=VllmClassifierConfig,
        title="Classifier",
        description="The vision-language model endpoint and prompt.",
    )
    rollout: ClassifierRolloutConfig = Field(
        default_factory=ClassifierRolloutConfig,
        title="Classifier rollout",
        description="A candidate classifier in shadow or canary beside the champion (also set at once, "
        "on every replica, with `seamline rollout classifier ...`).",
    )
    routing: RoutingPolicyConfig = Field(
        default_factory=RoutingPolicyConfig,
        title="Routing",
        description="When to act automatically, and review priorities.",
    )
    audit: AuditSamplingConfig = Field(
        default_factory=AuditSamplingConfig,
        title="Audit sampling",
        description=(
            "A share of automatically settled garments also goes to review, blind, so the accuracy of "
            "automatic decisions is measured (cloud/routing/audit.py)."
        ),
    )
    learning: LearningConfig = Field(
        default_factory=LearningConfig,
        title="Learning loop",
        description="The model registry, golden set, gate and retraining triggers (cloud/learning/).",
    )
    local_vllm: LocalVllmConfig | None = Field(
        default=None,
        title="Local vLLM",
        description="Start a local vLLM server for the classifier (single machine).",
    )
    max_garments_in_flight: int = Field(
        default=32,
        ge=1,
        le=4096,
        title="Garments in flight",
        description="Garments being classified at once.",
    )
    replica_id: str | None = Field(
        default=None,
        max_length=128,
        title="Replica id",
        description=(
            "This replica's name on the garments it holds (unique per replica). A replica started again "
            "under the same name takes back what its previous run held at once; others wait for the lease "
            "to run out. Default: the host name and gRPC port."
        ),
    )
    lease_s: float = Field(
        default=30.0,
        ge=1,
        title="Garment lease (s)",
        description=(
            "How long a garment stays with a replica that stops renewing it (renewed every sweep) before "
            "another replica's sweep takes it over."
        ),
    )
    sweep_interval_s: float = Field(
        default=2.0,
        gt=0,
        title="Sweep interval (s)",
        description=(
            "How often the service renews its leases, retries what failed, and takes over garments that no "
            "live replica holds."
        ),
    )
    retention_sweep_interval_s: float = Field(
        default=3600.0,
        gt=0,
        title="Retention sweep interval (s)",
        description=(
            "How often the service deletes garments past storage.retention_days (and finishes crop deletions "
            "a store outage left pending, and forgets expired review sessions)."
        ),
    )
    retry_initial_s: float = Field(
        default=1.0,
        gt=0,
        title="Retry backoff (s)",
        description="First wait before a failed step is retried.",
    )
    retry_max_s: float = Field(
        default=60.0, gt=0, title="Longest retry backoff (s)", description="The backoff doubles up to this."
    )
    publish_grace_s: float = Field(
        default=10.0,
        ge=0,
        title="Publish grace (s)",
        description=(
            "How long the broker may be unreachable (or refuse every verdict) before the service reports "
            "NOT_SERVING on gRPC health."
        ),
    )
    health_address: str | None = Field(
        default=None,
        title="Health address",
        description=(
            "host:port of a plaintext gRPC server carrying only the standard health service "
            "(grpc.health.v1), for probes that cannot present a client certificate (the kubelet's gRPC "
            "probes, `seamline cloud health`) while the main port requires mutual TLS; null: health on "
            "the main port only."
        ),
    )
    migrate_on_start: bool = Field(
        default=True,
        title="Migrate on start",
        description=(
            "Bring the audit store's schema to the code's revision when the service starts. false where a "
            "separate step runs `seamline cloud migrate` first (compose's migrate service, the Helm hook): "
            "the service then only checks the revision and refuses to start on an older schema."
        ),
    )
    metrics_address: str | None = Field(
        default=None,
        title="Metrics address",
        description="host:port for Prometheus /metrics (port 0: any free port); null: off.",
    )
    shutdown_grace_s: float = Field(
        default=10.0,
        ge=0,
        title="Shutdown grace (s)",
        description="Time to drain in-flight streams on SIGTERM.",
    )

    @field_validator("lines")
    @classmethod
    def _distinct(cls, lines: list[ServedLine]) -> list[ServedLine]:
        seen = set()
        for line in lines:
            key = (line.site_id, line.line_id)
            if key in seen:
                raise ValueError(f"{line.site_id}/{line.line_id} is listed twice")
            seen.add(key)
        return lines

    def audit_store_url(self, data_dir: Path) -> str:
        """``audit_url``, or the default SQLite database under ``storage.data_dir``."""
        return self.audit_url or f"sqlite:///{data_dir / 'cloud' / 'audit.db'}"

    def served_lines(self) -> frozenset[tuple[str, str]]:
        """``(site_id, line_id)`` of every line this service serves."""
        return frozenset((line.site_id, line.line_id) for line in self.lines)
