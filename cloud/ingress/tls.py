"""TLS for the ingress: server credentials that follow certificate rotation, and the peer's identity.

With ``grpc.tls`` holding a certificate and key the server speaks only TLS; with a ``ca_file`` too it
requires a client certificate signed by that CA (mutual TLS) and binds each stream to the identity the
certificate names (``seamline.contract.identity``). gRPC asks for the certificate configuration at every new
handshake; ``ServerTls`` re-reads the files then if they changed, so a rotated certificate or CA bundle is in
force for the next connection without a restart (established streams keep theirs until they reconnect,
which ``grpc.max_connection_age_s`` bounds). A rotation that leaves the files unusable (a key that does not
match, half a bundle) is logged at ERROR and the last good material stays in force.
"""

from __future__ import annotations

import grpc

from seamline.config.models import TlsConfig
from seamline.contract.identity import EdgeIdentity, identities_in
from seamline.errors import ConfigError
from seamline.tls import TlsFiles, WatchedTlsFiles


class ServerTls:
    """The server credentials for ``tls`` (checked at construction: ConfigError names a bad file)."""

    def __init__(self, tls: TlsConfig, where: str = "grpc.tls") -> None:
        if tls.cert_file is None or tls.key_file is None:
            raise ConfigError(f"{where}: the cloud serves TLS with cert_file and key_file; both are missing")
        self.tls = tls
        self.where = where
        self.mutual = tls.ca_file is not None
        self.watched = WatchedTlsFiles(tls, where)
        self.reloads = 0

    def _configuration(self, files: TlsFiles):  # type: ignore[no-untyped-def]
        assert files.key is not None and files.cert is not None
        return grpc.ssl_server_certificate_configuration(
            [(files.key, files.cert)], root_certificates=files.ca
        )

    def _fetch(self):  # type: ignore[no-untyped-def]
        """gRPC's per-handshake callback: new configuration if the files changed, else None (keep)."""
        if not self.watched.refresh():
            return None
        self.reloads += 1
        return self._configuration(self.watched.files)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(self.watched.files), self._fetch, require_client_authentication=self.mutual
        )


def peer_identities(context: grpc.aio.ServicerContext) -> list[EdgeIdentity]:
    """The edge identities the peer's verified client certificate names (empty without one)."""
    auth = context.auth_context()
    uris = [value.decode("utf-8", "replace") for value in auth.get("peer_uri", [])]
    return identities_in(uris)


def identity_mismatch(
    hello_site: str, hello_line: str, hello_agent: str, names: list[EdgeIdentity]
) -> str | None:
    """Why a hello does not match the certificate's identity, or None when it does."""
    if not names:
        return (
            "the client certificate names no edge identity (a URI SAN spiffe://<site>/<line>/<agent>); "
            "issue it with `seamline certs edge`"
        )
    claimed = EdgeIdentity(hello_site, hello_line, hello_agent)
    if claimed in names:
        return None
    return f"the hello speaks for {claimed}, but the client certificate is for " + ", ".join(
        str(name) for name in names
    )
