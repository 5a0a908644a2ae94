"""The synthetic conveyor line as a camera: procedural garments at a set rate, with their truth on record."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from edge.sources.base import CapturedGarment, GarmentSource, ItemIds
from seamline.clock import utcnow
from seamline.config.base import StrictModel
from seamline.config.synth import SynthConfig


class SyntheticSourceConfig(StrictModel):
    """Garments rendered by ``seamline synth`` on the fly."""

    type: Literal["synthetic"] = Field(default="synthetic", title="Source", description="synthetic")
    synth: SynthConfig = Field(
        default_factory=SynthConfig,
        title="Synthetic line",
        description="What to render (size, views, seed...).",
    )
    rate_hz: float = Field(
        default=2.0,
        gt=0,
        le=1000,
        title="Rate (garments/s)",
        description="Belt rate; garments come at this pace.",
    )
    count: int = Field(default=0, ge=0, title="Count", description="Garments to produce; 0 = endless.")
    start_index: int = Field(
        default=0, ge=0, title="Start index", description="First synthetic garment index."
    )


class SyntheticSource(GarmentSource):
    kind = "synthetic"

    def __init__(self, config: SyntheticSourceConfig, item_ids: ItemIds) -> None:
        from seamline.synth import SyntheticLine  # the renderer: loaded only when this source runs

        super().__init__(item_ids)
        self.config = config
        self.line = SyntheticLine(config.synth)
        self.truth: dict[str, object] = {}  # item id -> SynthGarment truth, for the demo's accuracy figures

    def _produce(self) -> Iterator[CapturedGarment]:
        import time

        period = 1.0 / self.config.rate_hz
        next_at = time.monotonic()
        index = self.config.start_index
        while not self._stop.is_set() and (
            not self.config.count or index < self.config.start_index + self.config.count
        ):
            wait = next_at - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
            next_at = max(
                next_at + period, time.monotonic() - period
            )  # never burst to catch up more than one
            garment = self.line.garment(index)
            item_id = self.item_ids.next()
            self.truth[item_id] = garment
            yield CapturedGarment(
                item_id=item_id,
                views=tuple(v.image for v in garment.views),
                camera_ids=tuple(v.camera for v in garment.views),
                captured_at=utcnow(),
                source_ref=garment.item_id,
            )
            index += 1
