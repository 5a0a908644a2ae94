"""Where crop images live: a local directory by default (fsync'd before the garment is acked).

The interface is small so an object store (S3-compatible, for scale-out) can sit behind the same calls; the URL
in configuration picks the implementation.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlsplit

from seamline.errors import ConfigError

_EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}


class CropStore(ABC):
    """Stores crop bytes under a key; returns a URI the audit store records."""

    @abstractmethod
    def put(self, key: str, data: bytes, encoding: str) -> str:
        """Store durably (on stable storage when this returns); return its URI."""

    @abstractmethod
    def get(self, uri: str) -> bytes:
        """The bytes stored at ``uri``."""


class LocalCropStore(CropStore):
    """Files under a root directory: ``<root>/<key>.<ext>``, written atomically and fsync'd."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str, encoding: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise ValueError(f"bad crop key {key!r}")
        return self.root.joinpath(*parts).with_suffix("." + _EXTENSIONS[encoding])

    def put(self, key: str, data: bytes, encoding: str) -> str:
        path = self._path(key, encoding)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
        return path.as_uri()

    def get(self, uri: str) -> bytes:
        path = Path(urlsplit(uri).path)
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"{uri} is outside the crop store")
        return path.read_bytes()


def crop_store_from_url(url: str, base: Path | None = None) -> CropStore:
    """``file:///abs/path``, ``file:rel/path`` or a plain path -> LocalCropStore."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        path = Path(parts.path if parts.scheme else url)
        if not path.is_absolute() and base is not None:
            path = base / path
        return LocalCropStore(path)
    raise ConfigError(f"crop store URL {url!r}: only local paths (file://) are supported in this version")
