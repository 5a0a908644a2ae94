"""An edge agent's identity in its client certificate: the rule both sides of the gRPC contract share.

With mutual TLS the cloud does not take an edge agent's word for which line it speaks for: the agent's
client certificate names it, as one URI subject alternative name in SPIFFE form,

    spiffe://<site_id>/<line_id>/<agent_id>

(the site is the trust domain: one CA per site signs its edges). The cloud accepts a stream only when its
``AgentHello`` names the same site, line and agent (docs/contract.md, "Identity"). ``agent_id`` may hold
characters a URI path cannot, so it is percent-encoded in the URI and decoded when read.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from seamline.contract.mqtt import TOPIC_LEVEL

SCHEME = "spiffe"


@dataclass(frozen=True)
class EdgeIdentity:
    """The site, line and agent a certificate speaks for."""

    site_id: str
    line_id: str
    agent_id: str

    @property
    def uri(self) -> str:
        """The certificate's URI SAN for this identity."""
        return f"{SCHEME}://{self.site_id}/{self.line_id}/{quote(self.agent_id, safe='')}"

    def __str__(self) -> str:
        return f"{self.site_id}/{self.line_id}/{self.agent_id}"


def edge_identity(site_id: str, line_id: str, agent_id: str) -> EdgeIdentity:
    """An identity, checked as the contract checks a hello (site and line are topic levels)."""
    for name, value in (("site_id", site_id), ("line_id", line_id)):
        if not TOPIC_LEVEL.match(value):
            raise ValueError(f"{name} {value!r} must be 1-64 characters of a-z, 0-9 and '-'")
    if not 1 <= len(agent_id) <= 128:
        raise ValueError("agent_id must be 1-128 characters")
    return EdgeIdentity(site_id, line_id, agent_id)


def parse_edge_identity(uri: str) -> EdgeIdentity | None:
    """The identity a URI SAN names, or None if it is not an edge identity of this form."""
    parts = urlsplit(uri)
    if parts.scheme != SCHEME or parts.query or parts.fragment:
        return None
    segments = parts.path.split("/")
    if len(segments) != 3 or segments[0] != "":
        return None
    try:
        return edge_identity(parts.netloc, segments[1], unquote(segments[2]))
    except ValueError:
        return None


def identities_in(uris: list[str]) -> list[EdgeIdentity]:
    """The edge identities among a certificate's URI SANs."""
    return [identity for identity in map(parse_edge_identity, uris) if identity is not None]
