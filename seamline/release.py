"""Detector releases: a signed artefact, a signed per-site manifest, and the checks an edge makes on both.

The artefact is the folder `seamline edge export` writes (detector.onnx and its .json sidecar), signed with
OpenSSF ``model-signing`` (an elliptic-curve key; the edge holds the public key) and packed as a
tar: ``detector/`` (the folder) and ``detector.sig`` (its signature bundle). The manifest says which version,
where the artefact is (an https:// URL, e.g. a presigned S3 URL, or http:// inside a plant), its SHA-256,
which lines take it (all, some pinned lines, or a share of each line's garments), a serial that only rises,
and when it expires. It is signed with the same key and announced, retained, on
``<root>/<site>/releases/detector`` as
``{"manifest": "<the manifest's JSON text>", "signature": "<its signature bundle, base64>"}``.

``check_manifest`` is what an edge accepts: a valid signature by the configured key, this site, not expired,
and a serial above the one it runs unless the manifest is a signed rollback. Every refusal is a
``ReleaseRefused`` whose message says why; the edge keeps the version it has.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from seamline.clock import utcnow
from seamline.config.base import StrictModel
from seamline.errors import SeamlineError
from seamline.optional import require

SCHEMA_VERSION = "1.0"
ARTEFACT_DIR = "detector"
ARTEFACT_SIG = "detector.sig"


class ReleaseRefused(SeamlineError):
    """A release an edge must not run; the message says why (it keeps its current version)."""

    exit_code = 2

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = (
            reason  # signature, digest, expired, serial, current, site, artefact, malformed, smoke_test
        )


class ReleaseCanary(StrictModel):
    """Which of the site's lines take the release: pinned lines, or a share of each line's garments."""

    lines: list[str] | None = Field(default=None, description="Only these lines (all of their garments).")
    share: float | None = Field(
        default=None, gt=0, le=1, description="On each line, this share of garments (by garment id)."
    )


class ReleaseManifest(StrictModel):
    """One detector release for one site (see release.schema.json)."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    model: Literal["detector"] = "detector"
    site_id: str
    version: str = Field(min_length=1, max_length=128)
    serial: int = Field(ge=1)
    artefact_url: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=1)
    canary: ReleaseCanary | None = None
    rollback: bool = False
    issued_at: datetime
    expires_at: datetime
    notes: str | None = Field(default=None, max_length=2000)

    @field_validator("artefact_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("artefact_url: an https:// (or plant-internal http://) URL")
        return value

    def takes(self, line_id: str) -> bool:
        """Does this line run the release at all (pinned lines)?"""
        return self.canary is None or self.canary.lines is None or line_id in self.canary.lines

    @property
    def share(self) -> float:
        """The share of a taking line's garments the release detects (1: all)."""
        return self.canary.share if self.canary is not None and self.canary.share is not None else 1.0


def _signing():  # type: ignore[no-untyped-def]
    # model-signing imports pyOpenSSL without declaring it
    require("OpenSSL", "Verifying a detector release", extra="edge", package="pyopenssl")
    return require("model_signing", "Verifying a detector release", extra="edge", package="model-signing")


def sign_path(path: Path, private_key: Path, signature: Path) -> None:
    """Sign a file or folder with an elliptic-curve private key (PEM) into ``signature``."""
    _signing()
    from model_signing import signing

    signing.Config().use_elliptic_key_signer(private_key=private_key).sign(path, signature)


def verify_path(path: Path, public_key: Path, signature: Path) -> None:
    """Verify ``signature`` over a file or folder; ReleaseRefused("signature") when it does not hold."""
    _signing()
    from model_signing import verifying

    try:
        verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(path, signature)
    except Exception as exc:  # model-signing raises ValueError and others; all mean "not this key's"
        raise ReleaseRefused("signature", f"bad signature: {exc}") from exc


def artefact_version(folder: Path) -> str:
    """The version an exported detector folder reports on every garment (its detector.json sidecar)."""
    try:
        return str(json.loads((folder / "detector.json").read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise ReleaseRefused(
            "artefact", f"{folder}: no readable detector.json with a version ({exc})"
        ) from exc


def pack_artefact(folder: Path, private_key: Path) -> bytes:
    """Sign an exported detector folder and pack it with its signature; returns the tar's bytes."""
    if not (folder / "detector.onnx").exists():
        raise SeamlineError(f"{folder}: no detector.onnx (give the folder `seamline edge export` wrote)")
    with tempfile.TemporaryDirectory() as tmp:
        signature = Path(tmp) / ARTEFACT_SIG
        sign_path(folder, private_key, signature)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                tar.add(file, arcname=f"{ARTEFACT_DIR}/{file.relative_to(folder).as_posix()}")
            tar.add(signature, arcname=ARTEFACT_SIG)
    return buffer.getvalue()


def unpack_artefact(data: bytes, manifest: ReleaseManifest, public_key: Path, into: Path) -> Path:
    """Check the artefact's digest against the manifest, unpack it into ``into`` and verify the folder's
    signature; returns the detector folder. ReleaseRefused on any mismatch (``into`` is then removed)."""
    import shutil

    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.sha256 or len(data) != manifest.size_bytes:
        raise ReleaseRefused(
            "digest",
            f"artefact digest {digest[:16]}... ({len(data)} bytes) is not the manifest's "
            f"{manifest.sha256[:16]}... ({manifest.size_bytes} bytes)",
        )
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            names = tar.getnames()
            if ARTEFACT_SIG not in names or not any(n.startswith(f"{ARTEFACT_DIR}/") for n in names):
                raise ReleaseRefused(
                    "artefact", f"artefact holds {names[:5]}, not {ARTEFACT_DIR}/ and a signature"
                )
            tar.extractall(into, filter="data")  # no absolute paths, links out, devices
        verify_path(into / ARTEFACT_DIR, public_key, into / ARTEFACT_SIG)
        version = artefact_version(into / ARTEFACT_DIR)
        if version != manifest.version:
            raise ReleaseRefused(
                "artefact", f"the artefact is {version!r}, the manifest names {manifest.version!r}"
            )
    except ReleaseRefused:
        shutil.rmtree(into, ignore_errors=True)
        raise
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(into, ignore_errors=True)
        raise ReleaseRefused("artefact", f"artefact is not a readable release tar: {exc}") from exc
    return into / ARTEFACT_DIR


def sign_manifest(manifest: ReleaseManifest, private_key: Path) -> str:
    """The retained MQTT payload: the manifest's JSON text and its signature."""
    text = manifest.model_dump_json(exclude_none=True)
    with tempfile.TemporaryDirectory() as tmp:
        path, signature = Path(tmp) / "manifest.json", Path(tmp) / "manifest.sig"
        path.write_text(text, encoding="utf-8")
        sign_path(path, private_key, signature)
        bundle = base64.b64encode(signature.read_bytes()).decode("ascii")
    return json.dumps({"manifest": text, "signature": bundle})


def check_manifest(
    payload: bytes | str,
    public_key: Path,
    *,
    site_id: str,
    current_serial: int,
    now: datetime | None = None,
) -> ReleaseManifest:
    """The manifest in a release message, if this edge may run it; else ReleaseRefused saying why."""
    try:
        message = json.loads(payload)
        text, bundle = message["manifest"], base64.b64decode(message["signature"], validate=True)
        if not isinstance(text, str):
            raise TypeError("manifest is not a string")
    except (ValueError, KeyError, TypeError) as exc:
        raise ReleaseRefused("malformed", f"not a release message ({exc})") from exc
    with tempfile.TemporaryDirectory() as tmp:
        path, signature = Path(tmp) / "manifest.json", Path(tmp) / "manifest.sig"
        path.write_text(text, encoding="utf-8")
        signature.write_bytes(bundle)
        verify_path(path, public_key, signature)  # before anything in it is believed
    try:
        manifest = ReleaseManifest.model_validate_json(text)
    except ValidationError as exc:
        raise ReleaseRefused("malformed", f"signed but invalid manifest: {exc.errors()[0]['msg']}") from exc
    if manifest.site_id != site_id:
        raise ReleaseRefused("site", f"manifest is for site {manifest.site_id!r}, not {site_id!r}")
    if manifest.serial == current_serial:
        raise ReleaseRefused("current", f"serial {manifest.serial} is already running (or was reverted)")
    now = now or utcnow()
    if manifest.expires_at <= now:
        raise ReleaseRefused("expired", f"manifest serial {manifest.serial} expired at {manifest.expires_at}")
    if manifest.serial <= current_serial and not manifest.rollback:
        raise ReleaseRefused(
            "serial",
            f"manifest serial {manifest.serial} is not above {current_serial} (the one running) and is not "
            "a rollback",
        )
    return manifest
