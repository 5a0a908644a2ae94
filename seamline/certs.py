"""Certificates for a site: a CA, the cloud's server certificate, one client certificate per edge agent.

For tests and small sites (``seamline certs ...``); a plant with its own PKI issues the same shapes there:

* the **site CA** signs everything else (``ca.pem``; keep ``ca.key`` offline);
* the **cloud server certificate** names the hosts edges dial (DNS names and IP addresses as SANs);
* an **edge client certificate** carries the agent's identity as its one URI SAN,
  ``spiffe://<site>/<line>/<agent>`` (``seamline.contract.identity``), which the cloud binds the stream to;
* a **broker** or any other server is issued like the cloud (``server``).

Keys are ECDSA P-256; private keys are written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from seamline.clock import utcnow
from seamline.contract.identity import EdgeIdentity


@dataclass(frozen=True)
class Issued:
    """A private key and its certificate, both PEM."""

    key_pem: bytes
    cert_pem: bytes

    def write(self, folder: Path, name: str) -> tuple[Path, Path]:
        """Write ``<name>.pem`` and ``<name>.key`` (0600) into ``folder``; returns (cert, key) paths."""
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = folder / f"{name}.pem", folder / f"{name}.key"
        write_atomic(cert, self.cert_pem, 0o644)
        write_atomic(key, self.key_pem, 0o600)
        return cert, key

    @classmethod
    def read(cls, folder: Path, name: str) -> Issued:
        return cls((folder / f"{name}.key").read_bytes(), (folder / f"{name}.pem").read_bytes())


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` in one rename, so a reader never sees half a file (certificate rotation)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _validity(days: float, valid_from: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    start = (valid_from or utcnow()) - dt.timedelta(minutes=5)  # a little slack for clock skew
    return start, start + dt.timedelta(days=days)


def _key_and_pem() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key, pem


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(name: str, *, days: float = 3650, valid_from: dt.datetime | None = None) -> Issued:
    """A self-signed CA that may sign end-entity certificates only (path length 0)."""
    key, key_pem = _key_and_pem()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start, end = _validity(days, valid_from)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key_pem, cert.public_bytes(serialization.Encoding.PEM))


def _issue(
    ca: Issued,
    common_name: str,
    sans: list[x509.GeneralName],
    usage_oid: x509.ObjectIdentifier,
    *,
    days: float,
    valid_from: dt.datetime | None,
) -> Issued:
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    key, key_pem = _key_and_pem()
    start, end = _validity(days, valid_from)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage_oid]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(key_pem, cert.public_bytes(serialization.Encoding.PEM))


def issue_server(
    ca: Issued, hosts: Sequence[str], *, days: float = 825, valid_from: dt.datetime | None = None
) -> Issued:
    """A server certificate for ``hosts`` (DNS names or IP addresses), e.g. the cloud or the broker."""
    if not hosts:
        raise ValueError("a server certificate needs at least one host name or address")
    sans = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    return _issue(ca, hosts[0], sans, ExtendedKeyUsageOID.SERVER_AUTH, days=days, valid_from=valid_from)


def issue_edge(
    ca: Issued, identity: EdgeIdentity, *, days: float = 365, valid_from: dt.datetime | None = None
) -> Issued:
    """An edge agent's client certificate: its identity as the one URI SAN, the agent id as its CN."""
    sans = [x509.UniformResourceIdentifier(identity.uri)]
    return _issue(
        ca, identity.agent_id, sans, ExtendedKeyUsageOID.CLIENT_AUTH, days=days, valid_from=valid_from
    )
