"""How the cloud reaches the vision-language model: the ``cloud.classifier`` configuration section.

Apart from the classifier itself (``vllm_backend``) so that whoever only reads the configuration (the review
console, the CLI's checks) needs none of the classifier's HTTP client.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from cloud.classifiers.prompts import PromptConfig
from cloud.storage.rollout_state import Endpoint, RolloutState
from seamline.config.base import StrictModel
from seamline.config.secrets import Secret


class VllmClassifierConfig(StrictModel):
    """Where the vision-language model is served and how it is asked."""

    base_url: str | list[str] = Field(
        default="http://127.0.0.1:8000/v1",
        title="Base URL",
        description=(
            "OpenAI-compatible endpoint of vLLM (or a router in front of replicas), or a list of servers: "
            "each request goes to the least loaded one in service; a failing one is taken out and probed "
            "back in on /health."
        ),
    )
    server_backoff_max_s: float = Field(
        default=30.0,
        gt=0,
        title="Longest server backoff (s)",
        description="With several servers: the longest a failing server stays out before it is probed.",
    )

    @property
    def base_urls(self) -> list[str]:
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    @field_validator("base_url")
    @classmethod
    def _some_url(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("name at least one server")
        return value

    model: str = Field(default="Qwen/Qwen2.5-VL-7B-Instruct", title="Model", description="Served model name.")
    model_version: str | None = Field(
        default=None, title="Model version", description="Recorded on verdicts; default: the model name."
    )
    api_key: Secret | None = Field(
        default=None, title="API key", description="Bearer token for the endpoint, if it wants one."
    )
    max_concurrency: int = Field(
        default=16, ge=1, le=1024, title="Concurrency", description="Requests in flight at once."
    )
    timeout_s: float = Field(default=30.0, gt=0, title="Timeout (s)", description="Per request.")
    retries: int = Field(
        default=2,
        ge=0,
        le=10,
        title="Retries",
        description="Extra attempts on transient errors (connection, 429, 5xx, timeout).",
    )
    backoff_s: float = Field(
        default=0.5, gt=0, title="Backoff (s)", description="First retry delay; doubles each time."
    )
    max_tokens: int = Field(
        default=128,
        ge=32,
        le=1024,
        title="Max tokens",
        description="Answer budget (~40 tokens of JSON skeleton plus the reason).",
    )
    temperature: float = Field(
        default=0.1,
        ge=0,
        le=2,
        title="Temperature",
        description="For the single-sample answer (the seed's 0.1).",
    )
    samples: int = Field(
        default=1,
        ge=1,
        le=16,
        title="Samples",
        description="Self-consistency: answers sampled in one call (vLLM n).",
    )
    sample_temperature: float = Field(
        default=0.7, ge=0, le=2, title="Sample temperature", description="Temperature when samples > 1."
    )
    logprobs: bool = Field(
        default=True,
        title="Logprobs",
        description="Ask for token log-probabilities (the routing confidence).",
    )
    prompt: PromptConfig = Field(
        default_factory=PromptConfig, title="Prompt", description="Style, language and few-shot examples."
    )
    multi_view: bool = Field(
        default=False,
        title="Multi-view",
        description="Send all crops of a garment (up to 8, from up to 4 views) in one request and get one "
        "answer per crop.",
    )


class ClassifierRolloutConfig(StrictModel):
    """``cloud.rollout``: a candidate classifier served beside the champion (see README, "Rolling out a
    classifier"). ``seamline rollout classifier ...`` changes the same state at once, on every replica; this
    section is applied when the service starts with it changed (the last change wins either way)."""

    mode: Literal["off", "shadow", "canary", "rolled_back"] | None = Field(
        default=None,
        title="Mode",
        description="off, shadow (the candidate also answers a share; nothing routes on it), canary (a "
        "share of garments is decided by the candidate) or rolled_back. Unset: leave the rollout as the "
        "CLI last set it.",
    )
    share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        title="Share",
        description="The share of garments (by a hash of the garment id) the shadow or canary takes.",
    )
    candidate: Endpoint | None = Field(
        default=None,
        title="Candidate",
        description="The candidate: its version, served model name, and its servers (none: a LoRA adapter "
        "on the champion's servers).",
    )
    max_shadow_in_flight: int = Field(
        default=8,
        ge=1,
        le=1024,
        title="Shadow backlog",
        description="Shadow classifications in flight at most; beyond, a garment's shadow is skipped "
        "(counted), so the shadow never slows the line.",
    )

    @model_validator(mode="after")
    def _valid_state(self) -> ClassifierRolloutConfig:
        if self.mode is not None:
            self.state()  # the same checks the CLI's states get
        return self

    def state(self) -> RolloutState | None:
        """The rollout state this section sets, or None when it sets none."""
        if self.mode is None:
            return None
        share = self.share if self.mode in ("shadow", "canary") else 0.0
        return RolloutState(mode=self.mode, share=share, candidate=self.candidate, set_by="config")
