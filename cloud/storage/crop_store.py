"""Where crop images live: a local directory by default (fsync'd before the garment is acked), or an
S3-compatible object store for scale-out (AWS S3, MinIO, Ceph RGW, rclone serve s3...). The URL in
configuration picks one:

- ``crops``, ``/var/lib/seamline/crops`` or ``file:///...``: a directory;
- ``s3://bucket/prefix?endpoint=http://minio:9000&region=us-east-1``: objects ``prefix/<key>.<ext>`` in a
  bucket. Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, a
  profile, an instance role), never from the URL. A PUT that S3 answers with success is durable, so ``put``
  returning means stored, as the ingress requires before it acks.
"""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from seamline.errors import ConfigError, SeamlineError
from seamline.optional import require

_EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}


class CropKeyError(SeamlineError, ValueError):
    """A key that names no place inside the store (empty, or a ``.``/``..`` segment): retrying cannot help."""


def _key_parts(key: str) -> list[str]:
    """The key's path segments; CropKeyError if one would stay in or climb out of its folder."""
    parts = [p for p in key.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise CropKeyError(f"bad crop key {key!r}: it names no place in the store")
    return parts


class CropStore(ABC):
    """Stores crop bytes under a key; returns a URI the audit store records."""

    @abstractmethod
    def put(self, key: str, data: bytes, encoding: str) -> str:
        """Store durably (on stable storage when this returns); return its URI.

        Raises CropKeyError for a key that names no place in the store (not worth retrying); anything else
        raised means the store is unavailable.
        """

    @abstractmethod
    def get(self, uri: str) -> bytes:
        """The bytes stored at ``uri``."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Remove what is stored at ``uri`` (nothing there is not an error); raises if the store is down."""


class LocalCropStore(CropStore):
    """Files under a root directory: ``<root>/<key>.<ext>``, written atomically and fsync'd."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str, encoding: str) -> Path:
        # Append the extension (as the S3 store does): with_suffix would replace ".c1" in crop id "v0.c1", so
        # crops "v0.c1" and "v0.c2" would overwrite each other in "v0.jpg".
        path = self.root.joinpath(*_key_parts(key))
        return path.with_name(f"{path.name}.{_EXTENSIONS[encoding]}")

    def put(self, key: str, data: bytes, encoding: str) -> str:
        path = self._path(key, encoding)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A temporary name of each writer's own: the same garment sent on several streams at once has several
        # writers of one file, and with a shared name one writer's rename took the file from under another.
        # "x" (create, never reuse) keeps the umask's permissions, unlike tempfile's 0600.
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
        return path.as_uri()

    def _file(self, uri: str) -> Path:
        path = Path(unquote(urlsplit(uri).path))  # as_uri() percent-encodes ':' and the like
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"{uri} is outside the crop store")
        return path

    def get(self, uri: str) -> bytes:
        return self._file(uri).read_bytes()

    def delete(self, uri: str) -> None:
        self._file(uri).unlink(missing_ok=True)


class S3CropStore(CropStore):
    """Objects in an S3-compatible bucket: ``s3://<bucket>/<prefix>/<key>.<ext>``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        if client is None:
            boto3 = require("boto3", "The S3 crop store", extra="cloud")
            Config = require("botocore.config", "The S3 crop store", extra="cloud", package="boto3").Config
            # Path-style addressing works with every S3-compatible server; retries cover brief outages.
            config = Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            )
            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _key(self, key: str, encoding: str) -> str:
        parts = [*([self.prefix] if self.prefix else []), *_key_parts(key)]
        return "/".join(parts) + "." + _EXTENSIONS[encoding]

    def put(self, key: str, data: bytes, encoding: str) -> str:
        object_key = self._key(key, encoding)
        self.client.put_object(Bucket=self.bucket, Key=object_key, Body=data, ContentType=f"image/{encoding}")
        return f"s3://{self.bucket}/{object_key}"

    def _object_key(self, uri: str) -> str:
        parts = urlsplit(uri)
        key = parts.path.lstrip("/")
        if (
            parts.scheme != "s3"
            or parts.netloc != self.bucket
            or (self.prefix and not key.startswith(self.prefix + "/"))
        ):
            raise ValueError(f"{uri} is outside the crop store s3://{self.bucket}/{self.prefix}")
        return key

    def get(self, uri: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._object_key(uri))["Body"].read()

    def delete(self, uri: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object_key(uri))  # S3: absent is success


def crop_store_from_url(url: str, base: Path | None = None) -> CropStore:
    """A crop store for ``url`` (see the module doc); relative directories resolve against ``base``."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        path = Path(parts.path if parts.scheme else url)
        if not path.is_absolute() and base is not None:
            path = base / path
        return LocalCropStore(path)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"crop store URL {url!r}: name a bucket, e.g. s3://seamline-crops/prod")
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = sorted(set(options) - {"endpoint", "region"})
        if unknown:
            raise ConfigError(
                f"crop store URL {url!r}: unknown option(s) {unknown}; use endpoint= and region="
            )
        return S3CropStore(
            parts.netloc, parts.path, endpoint_url=options.get("endpoint"), region=options.get("region")
        )
    raise ConfigError(f"crop store URL {url!r}: use a directory, file:// or s3://bucket/prefix")
