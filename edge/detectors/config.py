"""Settings every detector runtime shares; each runtime module adds its own with ``type: Literal[KEY]``."""

from __future__ import annotations

from pydantic import Field, field_validator

from seamline.config.base import StrictModel


class BaseDetectorConfig(StrictModel):
    """Thresholds common to all runtimes."""

    score_threshold: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        title="Score threshold",
        description="Keep regions scoring at least this. Low on purpose (the seed's 0.25): "
        "recall first, the cloud filters.",
    )
    top_k: int = Field(
        default=100,
        ge=1,
        le=1000,
        title="Top k",
        description="Most candidate regions per image before thresholding.",
    )
    class_agnostic: bool = Field(
        default=True,
        title="Class-agnostic",
        description="One 'defect' class (the best class per query) instead of per-class candidates.",
    )
    tiles: tuple[int, int] | None = Field(
        default=None,
        title="Tiles",
        description="Detect in [columns, rows] overlapping tiles of each frame "
        "(small defects on large frames); default: the grid the model was trained for (its metadata), "
        "else whole frames.",
    )

    @field_validator("tiles")
    @classmethod
    def _grid(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not all(1 <= v <= 8 for v in value):
            raise ValueError("tiles: columns and rows must be 1-8")
        return value
