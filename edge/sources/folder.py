"""A folder of images: one file per garment, or ``<garment>_v<k>.<ext>`` files grouped into views.

Unreadable files (corrupt, truncated, empty, decompression bombs, too large) are logged and skipped; the
source goes on with the next garment.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.sources.base import CapturedGarment, GarmentSource, ItemIds
from seamline.clock import utcnow
from seamline.config.base import StrictModel
from seamline.config.paths import ConfigPath
from seamline.imaging import ImageDecodeError, decode_image

logger = logging.getLogger(__name__)

_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
_VIEW_NAME = re.compile(r"^(?P<garment>.+)_v(?P<view>[0-3])$")


class FolderSourceConfig(StrictModel):
    """Images from a folder, in name order."""

    type: Literal["folder"] = Field(default="folder", title="Source", description="folder")
    path: ConfigPath = Field(
        title="Folder", description="Folder searched recursively for .jpg/.jpeg/.png/.webp files."
    )
    interval_s: float = Field(
        default=0.0,
        ge=0,
        title="Interval (s)",
        description="Pause between garments; 0 = as fast as possible.",
    )
    loop: bool = Field(default=False, title="Loop", description="Start again at the end (a replay line).")
    max_file_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        title="Max file size",
        description="Bigger files are skipped unread.",
    )
    max_pixels: int = Field(
        default=40_000_000,
        ge=1024,
        title="Max pixels",
        description="Images declaring more pixels are skipped (bomb guard).",
    )


def group_views(files: list[Path]) -> list[list[tuple[int, Path]]]:
    """Group ``x_v0.jpg``, ``x_v1.jpg``... into one garment (views in order); other files stand alone."""
    groups: dict[str, list[tuple[int, Path]]] = {}
    order: list[str] = []
    for path in files:
        match = _VIEW_NAME.match(path.stem)
        key = str(path.parent / match["garment"]) if match else str(path)
        view = int(match["view"]) if match else 0
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((view, path))
    return [sorted(groups[key]) for key in order]


class FolderSource(GarmentSource):
    kind = "folder"

    def __init__(self, config: FolderSourceConfig, item_ids: ItemIds) -> None:
        super().__init__(item_ids)
        if not config.path.is_dir():
            raise FileNotFoundError(f"source folder {config.path} does not exist")
        self.config = config

    def _read(self, path: Path):  # type: ignore[no-untyped-def]
        try:
            size = path.stat().st_size
            if size > self.config.max_file_bytes:
                raise ImageDecodeError(f"file is {size} bytes, over {self.config.max_file_bytes}")
            return decode_image(path.read_bytes(), max_pixels=self.config.max_pixels)
        except (ImageDecodeError, OSError) as exc:
            self.skipped += 1
            logger.warning("skipping unreadable image %s: %s", path, getattr(exc, "reason", exc))
            return None

    def _produce(self) -> Iterator[CapturedGarment]:
        while True:
            files = sorted(
                p for p in self.config.path.rglob("*") if p.suffix.lower() in _SUFFIXES and p.is_file()
            )
            if not files:
                logger.warning("no images in %s", self.config.path)
            for views in group_views(files):
                if self._stop.is_set():
                    return
                images, names = [], []
                for _, path in views:
                    image = self._read(path)
                    if image is not None:
                        images.append(image)
                        names.append(path.name)
                if not images:
                    continue
                yield CapturedGarment(
                    item_id=self.item_ids.next(),
                    views=tuple(images),
                    camera_ids=tuple(f"view{i}" for i in range(len(images))),
                    captured_at=utcnow(),
                    source_ref=",".join(names),
                )
                if self.config.interval_s:
                    self._stop.wait(self.config.interval_s)
            if not self.config.loop or not files:
                return
            time.sleep(0)
