"""The edge identity a client certificate's URI SAN carries (docs/contract.md, "Identity")."""

import pytest

from seamline.contract.identity import EdgeIdentity, edge_identity, identities_in, parse_edge_identity


def test_round_trip_with_an_agent_id_a_uri_path_cannot_hold():
    identity = edge_identity("site1", "line-2", "edge a/b%c")
    assert identity.uri == "spiffe://site1/line-2/edge%20a%2Fb%25c"
    assert parse_edge_identity(identity.uri) == identity


@pytest.mark.parametrize(
    "uri",
    [
        "https://site1/line1/edge-a",  # not SPIFFE
        "spiffe://site1/line1",  # no agent
        "spiffe://site1/line1/edge-a/extra",
        "spiffe://Site1/line1/edge-a",  # not a topic level
        "spiffe://site1/line1/edge-a?x=1",
        "spiffe://site1/line1/",  # empty agent
    ],
)
def test_other_uris_name_no_edge(uri):
    assert parse_edge_identity(uri) is None


def test_identities_among_other_sans():
    assert identities_in(["urn:x", "spiffe://s/l/a", "spiffe://s/l"]) == [EdgeIdentity("s", "l", "a")]


def test_a_bad_identity_is_refused_when_made():
    with pytest.raises(ValueError, match="line_id"):
        edge_identity("site1", "Line 1", "a")
    with pytest.raises(ValueError, match="agent_id"):
        edge_identity("site1", "line1", "")
