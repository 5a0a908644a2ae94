"""Camera sources behind one interface, picked by the config's ``type``.

Types: folder, video (file/RTSP/GStreamer), synthetic.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from edge.sources.base import (
    CapturedGarment,
    DropStrategy,
    GarmentBuffer,
    GarmentSource,
    ItemIds,
    SourceState,
)
from edge.sources.folder import FolderSource, FolderSourceConfig
from edge.sources.synthetic import SyntheticSource, SyntheticSourceConfig
from edge.sources.video import VideoSource, VideoSourceConfig

SourceConfig = Annotated[
    FolderSourceConfig | VideoSourceConfig | SyntheticSourceConfig, Field(discriminator="type")
]


def build_source(
    config: FolderSourceConfig | VideoSourceConfig | SyntheticSourceConfig, item_ids: ItemIds
) -> GarmentSource:
    """The source ``config`` describes."""
    if isinstance(config, FolderSourceConfig):
        return FolderSource(config, item_ids)
    if isinstance(config, VideoSourceConfig):
        return VideoSource(config, item_ids)
    return SyntheticSource(config, item_ids)


__all__ = [
    "CapturedGarment",
    "DropStrategy",
    "GarmentBuffer",
    "GarmentSource",
    "ItemIds",
    "SourceConfig",
    "SourceState",
    "build_source",
]
