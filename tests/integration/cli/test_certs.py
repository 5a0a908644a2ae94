"""`seamline certs` as an operator runs it: a site CA, a server and an edge certificate that verify."""

import stat

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from seamline.contract.identity import identities_in
from tests.integration.cli.test_validate_config import _run


def _edge(pki, line_id: str):  # type: ignore[no-untyped-def]
    return _run(
        "certs",
        "edge",
        "--ca",
        str(pki),
        "--out",
        str(pki),
        "--site",
        "site1",
        "--line",
        line_id,
        "--agent",
        "edge-a",
    )


def test_ca_server_and_edge_certificates(tmp_path):
    pki = tmp_path / "pki"
    assert _run("certs", "ca", "--out", str(pki), "--name", "Site 1 CA").returncode == 0
    result = _run(
        "certs",
        "server",
        "--ca",
        str(pki),
        "--out",
        str(pki),
        "--host",
        "cloud.example",
        "--host",
        "10.0.0.5",
    )
    assert result.returncode == 0, result.stderr
    result = _edge(pki, "line1")
    assert result.returncode == 0, result.stderr
    assert "spiffe://site1/line1/edge-a" in result.stdout

    ca = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    for name in ("server", "edge-a"):
        cert = x509.load_pem_x509_certificate((pki / f"{name}.pem").read_bytes())
        cert.verify_directly_issued_by(ca)
        assert stat.S_IMODE((pki / f"{name}.key").stat().st_mode) == 0o600
    server = x509.load_pem_x509_certificate((pki / "server.pem").read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["cloud.example"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    edge = x509.load_pem_x509_certificate((pki / "edge-a.pem").read_bytes())
    uris = edge.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(i) for i in identities_in(uris.get_values_for_type(x509.UniformResourceIdentifier))] == [
        "site1/line1/edge-a"
    ]
    usage = edge.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_bad_input_exits_2(tmp_path):
    pki = tmp_path / "pki"
    assert _run("certs", "ca", "--out", str(pki)).returncode == 0
    again = _run("certs", "ca", "--out", str(pki))
    assert again.returncode == 2 and "is not overwritten" in again.stderr
    no_ca = _run("certs", "server", "--ca", str(tmp_path / "absent"), "--out", str(pki), "--host", "h")
    assert no_ca.returncode == 2 and "cannot read ca.pem and ca.key" in no_ca.stderr
    bad_line = _edge(pki, "Line 1")
    assert bad_line.returncode == 2 and "line_id" in bad_line.stderr
