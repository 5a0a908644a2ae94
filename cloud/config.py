"""The ``cloud:`` section of a Seamline configuration file: what the cloud service runs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, model_validator

from cloud.classifiers.vllm_backend import VllmClassifierConfig
from cloud.ingress.validation import IngressLimits
from cloud.routing.policy import RoutingPolicyConfig
from seamline.config.base import StrictModel


class LocalVllmConfig(StrictModel):
    """Start a vLLM server on this machine (the single-machine default; production points classifier.base_url at a URL)."""

    model: Path = Field(
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


class CloudConfig(StrictModel):
    """The cloud classifier service."""

    crop_store: str = Field(
        default="crops",
        title="Crop store",
        description="Directory (relative to storage.data_dir), file:// URL, or s3://bucket/prefix?endpoint=...&region=... for an S3-compatible store.",
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
    routing: RoutingPolicyConfig = Field(
        default_factory=RoutingPolicyConfig,
        title="Routing",
        description="When to act automatically, and review priorities.",
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
    shutdown_grace_s: float = Field(
        default=10.0,
        ge=0,
        title="Shutdown grace (s)",
        description="Time to drain in-flight streams on SIGTERM.",
    )

    @model_validator(mode="after")
    def _resolve_paths(self, info: ValidationInfo) -> CloudConfig:
        source = (info.context or {}).get("source")
        if source is not None and self.local_vllm is not None and not self.local_vllm.model.is_absolute():
            self.local_vllm.model = Path(source).resolve().parent / self.local_vllm.model
        return self
