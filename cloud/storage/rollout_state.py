"""A model's rollout state (the data; cloud/storage/rollouts.py stores it): pydantic only, so configuration
readers load no database library.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from seamline.config.base import StrictModel
from seamline.sampling import sampled

Mode = Literal["off", "shadow", "canary", "promoted", "rolled_back"]
Arm = Literal["champion", "candidate"]


class Endpoint(StrictModel):
    """Where a model version is served: a second vLLM server (or list), or an adapter on the champion's."""

    version: str = Field(
        min_length=1, max_length=128, title="Version", description="Recorded on verdicts (e.g. classifier@7)."
    )
    model: str = Field(
        min_length=1,
        title="Served model name",
        description="The name requests use: the second server's model, or the LoRA adapter's name "
        "(vLLM --lora-modules NAME=PATH) on the champion's server.",
    )
    registry_version: str | None = Field(
        default=None,
        title="Registry version",
        description="Its version in the model registry, if registered: promoting moves the champion alias.",
    )
    base_url: list[str] | None = Field(
        default=None,
        title="Servers",
        description="Its vLLM server(s); none: the champion's servers (a LoRA adapter loaded there).",
    )

    @field_validator("base_url", mode="before")
    @classmethod
    def _listed(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _urls(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("name at least one server, or leave base_url out for the champion's")
            for url in value:
                if not url.startswith(("http://", "https://")):
                    raise ValueError(f"{url!r}: expected an http:// or https:// URL")
        return value


class RolloutState(StrictModel):
    """One revision of a model's rollout."""

    model: Literal["classifier"] = "classifier"
    revision: int = Field(default=0, ge=0)
    mode: Mode = "off"
    share: float = Field(default=0.0, ge=0.0, le=1.0)
    candidate: Endpoint | None = None
    # None: the champion configured in cloud.classifier; set once a candidate was promoted
    champion: Endpoint | None = None
    set_by: str = "config"
    set_at: datetime | None = None
    reason: str | None = None
    # the digest of the configuration that set it (source "config"), so a restart does not set it again
    config_digest: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RolloutState:
        if self.mode in ("shadow", "canary") and self.candidate is None:
            raise ValueError(f"{self.mode} needs a candidate (its version, served model name and servers)")
        if self.mode in ("off", "promoted", "rolled_back") and self.share:
            raise ValueError(f"{self.mode}: share must be 0")
        return self

    def arm_for(self, item_id: str) -> Arm:
        """Which model decides this garment."""
        if self.mode == "canary" and self.candidate is not None:
            if sampled(item_id, self.share, f"canary:{self.candidate.version}"):
                return "candidate"
        return "champion"

    def shadowed(self, item_id: str) -> bool:
        """Does the candidate also classify this garment, in the shadow?"""
        return (
            self.mode == "shadow"
            and self.candidate is not None
            and sampled(item_id, self.share, f"shadow:{self.candidate.version}")
        )

    def promoted(self, set_by: str, reason: str | None = None) -> RolloutState:
        """The next state when the candidate of a shadow or canary becomes the champion."""
        if self.candidate is None or self.mode not in ("shadow", "canary"):
            raise ValueError(f"nothing to promote: the rollout is {self.mode} (promote a shadow or canary)")
        return RolloutState(mode="promoted", champion=self.candidate, set_by=set_by, reason=reason)

    def rolled_back(self, set_by: str, reason: str | None = None) -> RolloutState:
        """The next state when the candidate stops deciding (kept for the record)."""
        if self.candidate is None or self.mode not in ("shadow", "canary"):
            raise ValueError(f"nothing to roll back: the rollout is {self.mode}")
        return RolloutState(
            mode="rolled_back", candidate=self.candidate, champion=self.champion, set_by=set_by, reason=reason
        )
