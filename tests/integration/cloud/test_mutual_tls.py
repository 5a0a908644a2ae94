"""Mutual TLS that the cloud enforces, against the real service (grpc.aio on a free port, a real broker) and
the edge's own uplink, with certificates made in the test by ``seamline.certs``.

The right edge streams; no client certificate, one from another CA, an expired one, one for another line or
agent, and a plaintext client are each refused with a clear status while the right edge keeps being served;
certificates rotated while an edge streams lose no garment; bad certificate files stop the commands with
exit 2 naming the file.
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cloud.config import CloudConfig
from edge.uplink.client import Uplink, UplinkConfig, tls_channel_factory
from edge.uplink.spool import Spool
from seamline.certs import issue_edge, issue_server, write_atomic
from seamline.config.models import SeamlineConfig, TlsConfig
from seamline.contract.identity import edge_identity
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.inspection.v1 import inspection_pb2_grpc as pb_grpc
from seamline.localbroker import free_port
from tests.fixtures.pki import SitePki
from tests.integration.cli.test_validate_config import _run
from tests.integration.cloud.test_cloud_service import ServiceThread, _garments
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _service(tmp_path, mqtt_broker, server_tls: dict, cloud_options=None, **grpc_options) -> ServiceThread:
    config = SeamlineConfig.model_validate(
        {
            "mqtt": {"url": mqtt_broker.url, "topic_root": f"seamline-tls{time.time_ns()}"},
            "grpc": {"listen_address": "127.0.0.1:0", "tls": server_tls, **grpc_options},
            "storage": {"data_dir": str(tmp_path / "data")},
        }
    )
    cloud = CloudConfig.model_validate(
        {
            "lines": [{"site_id": "site1", "line_id": "line1"}, {"site_id": "site1", "line_id": "line2"}],
            # no classifier listens: an accepted garment still gets its verdict (review, with the error)
            "classifier": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "retries": 0, "timeout_s": 2},
            **(cloud_options or {}),
        }
    )
    return ServiceThread(config, cloud)


def _hello(agent_id: str = "edge-a", line_id: str = "line1") -> pb.AgentHello:
    return pb.AgentHello(agent_id=agent_id, site_id="site1", line_id=line_id, contract_version="v1")


def _channel(address: str, pki: SitePki, cert_key=None) -> grpc.Channel:  # type: ignore[no-untyped-def]
    cert, key = cert_key if cert_key else (None, None)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca_file.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    return grpc.secure_channel(address, credentials)


def _open_stream(channel: grpc.Channel, hello: pb.AgentHello, garment: bytes | None = None) -> list:
    """Send a hello (and a garment), return what came back; raises grpc.RpcError if the stream is refused."""

    def requests():
        yield pb.UplinkMessage(hello=hello)
        if garment is not None:
            yield pb.UplinkMessage(garment=pb.Garment.FromString(garment))

    call = pb_grpc.InspectionServiceStub(channel).StreamGarments(requests(), timeout=10)
    answers = []
    for answer in call:
        answers.append(answer)
        if len(answers) == (2 if garment is not None else 1):
            call.cancel()
            break
    return answers


def _refused_with(make_channel, hello: pb.AgentHello, garment: bytes) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with make_channel() as channel:
        with pytest.raises(grpc.RpcError) as err:
            _open_stream(channel, hello, garment)
    return err.value


def test_only_the_edge_its_certificate_names_is_served(tmp_path, mqtt_broker):
    pki, other_ca = SitePki.make(tmp_path / "pki"), SitePki.make(tmp_path / "other-ca", "Another CA")
    cert, key = pki.server()
    right = pki.edge("edge-a")
    service = _service(
        tmp_path, mqtt_broker, {"cert_file": str(cert), "key_file": str(key), "ca_file": str(pki.ca_file)}
    )
    address = f"127.0.0.1:{service.port}"
    garments = dict(_garments("line1", 8, seed=21))
    ids = iter(garments)
    audit = service.service.audit
    try:
        # The right edge, through the edge's own TLS channel code: stored and acked.
        first = next(ids)
        with tls_channel_factory(
            address,
            TlsConfig(ca_file=pki.ca_file, cert_file=right[0], key_file=right[1]),
            max_message_bytes=8 << 20,
        )() as channel:
            answers = _open_stream(channel, _hello(), garments[first])
        assert answers[0].WhichOneof("kind") == "hello" and answers[1].ack.item_id == first

        refused = {
            "no client certificate": lambda: _channel(address, pki),
            "a certificate from another CA": lambda: _channel(address, pki, other_ca.edge("edge-a")),
            "an expired certificate": lambda: _channel(
                address, pki, pki.edge("edge-a", name="old", expired=True)
            ),
            "plaintext": lambda: grpc.insecure_channel(address),
        }
        for case, make_channel in refused.items():
            item_id = next(ids)
            error = _refused_with(make_channel, _hello(), garments[item_id])
            assert error.code() == grpc.StatusCode.UNAVAILABLE, (case, error.code(), error.details())
            assert not audit.has(item_id), case

        # Authenticated, but the hello speaks for another line or agent than the certificate names.
        line2 = pki.edge("edge-b", line_id="line2")
        for case, hello, cert_key, fragment in (
            ("another line", _hello("edge-b", "line1"), line2, "certificate is for site1/line2/edge-b"),
            ("another agent", _hello("edge-z"), right, "certificate is for site1/line1/edge-a"),
        ):
            item_id = next(ids)
            error = _refused_with(lambda ck=cert_key: _channel(address, pki, ck), hello, garments[item_id])
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, case
            assert fragment in error.details(), (case, error.details())
            assert not audit.has(item_id), case

        # The right edge is still served.
        last = next(ids)
        with _channel(address, pki, right) as channel:
            assert _open_stream(channel, _hello(), garments[last])[1].ack.item_id == last
        assert audit.has(first) and audit.has(last)
    finally:
        service.stop()


def test_the_health_port_answers_probes_without_a_certificate(tmp_path, mqtt_broker):
    """cloud.health_address: the kubelet's gRPC probe and `seamline cloud health` need no client certificate,
    while the main port still refuses a client without one; the health port follows the service's state."""
    pki = SitePki.make(tmp_path / "pki")
    cert, key = pki.server()
    health_port = free_port()
    service = _service(
        tmp_path,
        mqtt_broker,
        {"cert_file": str(cert), "key_file": str(key), "ca_file": str(pki.ca_file)},
        cloud_options={"health_address": f"127.0.0.1:{health_port}"},
    )
    probe = ["cloud", "health", f"127.0.0.1:{health_port}", "--timeout", "2"]
    try:
        assert service.service.health_port == health_port
        done = _run(*probe)
        assert done.returncode == 0 and "SERVING" in done.stdout, (done.stdout, done.stderr)
        with _channel(f"127.0.0.1:{service.port}", pki) as channel:  # main port, no client certificate
            with pytest.raises(grpc.RpcError) as err:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        service.stop()
    done = _run(*probe)  # stopped: nothing answers
    assert done.returncode == 1 and "UNAVAILABLE" in done.stderr, (done.stdout, done.stderr)


def test_certificates_rotated_while_an_edge_streams_lose_no_garment(tmp_path, mqtt_broker):
    """Both sides move to a new CA mid-stream: the cloud re-reads its files at the next handshake (edges
    reconnect within the connection age), the edge presents its new certificate from its next connection,
    and every garment is stored exactly once."""
    old, new = SitePki.make(tmp_path / "old"), SitePki.make(tmp_path / "new", "New site CA")
    cloud_dir, edge_dir = tmp_path / "cloud-tls", tmp_path / "edge-tls"
    cloud_dir.mkdir()
    edge_dir.mkdir()

    def install(pki: SitePki) -> None:
        # What an operator's rotation does: each file replaced in one rename (seamline.certs writes so).
        write_atomic(cloud_dir / "clients-ca.pem", pki.ca.cert_pem)
        write_atomic(edge_dir / "ca.pem", pki.ca.cert_pem)
        issue_server(pki.ca, ["127.0.0.1"]).write(cloud_dir, "cloud")
        issue_edge(pki.ca, edge_identity("site1", "line1", "edge-a")).write(edge_dir, "edge")

    install(old)
    service = _service(
        tmp_path,
        mqtt_broker,
        {
            "cert_file": str(cloud_dir / "cloud.pem"),
            "key_file": str(cloud_dir / "cloud.key"),
            "ca_file": str(cloud_dir / "clients-ca.pem"),
        },
        max_connection_age_s=1.0,
        max_connection_age_grace_s=0.5,
    )
    address = f"127.0.0.1:{service.port}"
    spool = Spool(tmp_path / "spool.db")
    uplink = Uplink(
        spool,
        tls_channel_factory(
            address,
            TlsConfig(
                ca_file=edge_dir / "ca.pem", cert_file=edge_dir / "edge.pem", key_file=edge_dir / "edge.key"
            ),
            max_message_bytes=8 << 20,
        ),
        _hello(),
        UplinkConfig(ack_timeout_s=10, backoff_initial_s=0.1, backoff_max_s=0.5),
    )
    garments = _garments("line1", 40, seed=22)
    rotated = threading.Event()
    try:
        uplink.start()
        for n, (item_id, payload) in enumerate(garments):
            spool.put(item_id, payload)
            uplink.notify()
            if n == 15:
                install(new)
                rotated.set()
            time.sleep(0.1)
        assert wait_until(lambda: len(spool) == 0, timeout=60), (len(spool), uplink.stats.last_error)
        audit = service.service.audit
        assert all(audit.has(item_id) for item_id, _ in garments)
        assert service.service.tls.reloads >= 1
        # The old CA's certificate no longer gets in; the new one does.
        with _channel(address, new, old.edge("edge-a", name="edge-old")) as channel:
            with pytest.raises(grpc.RpcError) as err:
                _open_stream(channel, _hello())
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        with _channel(address, new, new.edge("edge-a", name="edge-new")) as channel:
            assert _open_stream(channel, _hello())[0].WhichOneof("kind") == "hello"
    finally:
        uplink.stop()
        service.stop()
        spool.close()
    assert rotated.is_set()
    assert service.service.servicer.accepted == len(
        garments
    )  # each stored once, re-sends acked as duplicates


def _config_with_tls(tmp_path, tls: dict) -> str:
    path = tmp_path / "seamline.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "grpc": {"listen_address": "127.0.0.1:0", "tls": tls},
                "storage": {"data_dir": str(tmp_path / "data")},
                "cloud": {
                    "lines": [{"site_id": "site1", "line_id": "line1"}],
                    "classifier": {"base_url": "http://127.0.0.1:9/v1"},
                },
                "edge": {
                    "source": {"type": "folder", "path": str(tmp_path)},
                    "detector": {"type": "onnxruntime", "model": str(tmp_path / "absent.onnx")},
                },
            }
        )
    )
    return str(path)


def test_bad_certificate_files_exit_2_naming_the_file(tmp_path):
    pki, other = SitePki.make(tmp_path / "pki"), SitePki.make(tmp_path / "other")
    cert, key = pki.server()
    _, other_key = other.server()
    unreadable = tmp_path / "not-pem.pem"
    unreadable.write_text("hello\n")
    cases = [
        ({"cert_file": str(tmp_path / "absent.pem"), "key_file": str(key)}, "absent.pem does not exist"),
        ({"cert_file": str(unreadable), "key_file": str(key)}, "not-pem.pem is not PEM"),
        (
            {"cert_file": str(cert), "key_file": str(other_key)},
            f"the private key {other_key} does not belong to the certificate {cert}",
        ),
        (
            {"cert_file": str(cert), "key_file": str(key), "ca_file": str(tmp_path / "no-ca.pem")},
            "grpc.tls.ca_file: CA file",
        ),
    ]
    for tls, fragment in cases:
        config = _config_with_tls(tmp_path, tls)
        for command in (("cloud", "serve"), ("edge", "run")):
            result = _run(*command, "--config", config)
            assert result.returncode == 2, (command, tls, result.stderr[-2000:])
            assert fragment in result.stderr, (command, result.stderr[-2000:])
            assert "Traceback" not in result.stderr
