"""TLS material from configuration: read the files a ``tls:`` section names and check them before use.

Both sides call ``read_tls_files`` at start, so a missing, unreadable or mismatched file is a configuration
error (exit 2) that names the file, not a TLS handshake failure minutes later. The same call re-reads the
files when they are rotated (``WatchedTlsFiles``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from seamline.config.models import TlsConfig
from seamline.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    """The PEM bytes of a ``tls:`` section (None where the section names no file)."""

    ca: bytes | None
    cert: bytes | None
    key: bytes | None


def _read(path: Path, what: str, key: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{key}: {what} file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {what} file {path}: {exc.strerror}") from None
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{key}: {what} file {path} is not PEM")
    return data


def read_tls_files(tls: TlsConfig, where: str) -> TlsFiles:
    """Read and check the files of ``tls`` (``where`` is its key path, e.g. ``grpc.tls``).

    Checks that each file exists and is PEM, that the CA file holds certificates, and that the private key
    belongs to the certificate. Raises ConfigError naming the key and the file.
    """
    ca = cert = key = None
    if tls.ca_file is not None:
        ca = _read(tls.ca_file, "CA", f"{where}.ca_file")
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError as exc:
            raise ConfigError(f"{where}.ca_file: {tls.ca_file} holds no usable certificate: {exc}") from None
    if tls.cert_file is not None and tls.key_file is not None:
        cert = _read(tls.cert_file, "certificate", f"{where}.cert_file")
        key = _read(tls.key_file, "private key", f"{where}.key_file")
        try:
            leaf = x509.load_pem_x509_certificates(cert)[0]
        except ValueError as exc:
            raise ConfigError(f"{where}.cert_file: {tls.cert_file} is not a certificate: {exc}") from None
        try:
            private = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{where}.key_file: {tls.key_file} is not an unencrypted private key: {exc}"
            ) from None
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        if private.public_key().public_bytes(
            serialization.Encoding.DER, spki
        ) != leaf.public_key().public_bytes(serialization.Encoding.DER, spki):
            raise ConfigError(
                f"{where}: the private key {tls.key_file} does not belong to the certificate {tls.cert_file}"
            )
    return TlsFiles(ca, cert, key)


class _FileWatch:
    """Tells whether any of some files changed (size, modification time or inode) since the last look."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self._seen = self._stamp()

    def _stamp(self) -> tuple:
        stamps = []
        for path in self.paths:
            try:
                st = os.stat(path)
                stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def changed(self) -> bool:
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        return True


class WatchedTlsFiles:
    """The files of a ``tls:`` section, checked now and re-read when they change (certificate rotation).

    ``refresh()`` re-reads them if any changed and says whether new files are in use; a change that leaves
    them unusable (a key that does not match, half a bundle) is logged at ERROR and the last good files stay.
    """

    def __init__(self, tls: TlsConfig, where: str) -> None:
        self.tls, self.where = tls, where
        self.files = read_tls_files(tls, where)  # ConfigError (exit 2) naming a bad file
        self._watch = _FileWatch([p for p in (tls.ca_file, tls.cert_file, tls.key_file) if p is not None])

    def refresh(self) -> bool:
        if not self._watch.changed():
            return False
        try:
            self.files = read_tls_files(self.tls, self.where)
        except ConfigError as exc:
            logger.error("TLS files changed but cannot be used; keeping the previous ones: %s", exc)
            return False
        logger.info("TLS files of %s changed: the next connection uses them", self.where)
        return True
