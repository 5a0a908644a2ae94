"""The contract over real transports: the gRPC stubs on a real server, payloads through a real broker."""

import json
import threading
from concurrent import futures

import grpc
import paho.mqtt.client as mqtt
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from seamline.contract import messages as m
from seamline.contract.mqtt import LineTopics, validate_payload
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.inspection.v1 import inspection_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration
SERVICE = "seamline.inspection.v1.InspectionService"


class _AckEverything(pb_grpc.InspectionServiceServicer):
    """A contract-level peer: hello first, then one ack per garment."""

    def StreamGarments(self, request_iterator, context):
        first = next(request_iterator)
        assert first.WhichOneof("kind") == "hello"
        yield pb.DownlinkMessage(
            hello=pb.ServerHello(
                server_id="t", max_garment_bytes=1 << 20, max_crops_per_garment=64, max_in_flight=8
            )
        )
        for message in request_iterator:
            yield pb.DownlinkMessage(ack=pb.GarmentAck(item_id=message.garment.item_id))


def test_stream_and_health_over_a_real_channel():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_InspectionServiceServicer_to_server(_AckEverything(), server)
    health_servicer = health.HealthServicer()
    health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE), timeout=5
            )
            assert status.status == health_pb2.HealthCheckResponse.SERVING

            def uplink():
                yield pb.UplinkMessage(
                    hello=pb.AgentHello(agent_id="a", site_id="site1", line_id="line1", contract_version="v1")
                )
                for i in range(5):
                    yield pb.UplinkMessage(
                        garment=pb.Garment(item_id=f"g{i}", site_id="site1", line_id="line1")
                    )

            replies = list(pb_grpc.InspectionServiceStub(channel).StreamGarments(uplink(), timeout=10))
        assert replies[0].WhichOneof("kind") == "hello"
        assert [r.ack.item_id for r in replies[1:]] == [f"g{i}" for i in range(5)]
    finally:
        server.stop(grace=None)


def test_verdict_through_a_real_broker(mqtt_broker):
    topics = LineTopics("seamline-test", "site1", "line1")
    received: list[bytes] = []
    got = threading.Event()
    subscribed = threading.Event()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="seamline-test-sub")
    sub.on_subscribe = lambda *a, **k: subscribed.set()
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.verdicts, qos=1)

    def on_message(client, userdata, msg):
        received.append(msg.payload)
        got.set()

    sub.on_message = on_message
    sub.connect(mqtt_broker.host, mqtt_broker.port)
    sub.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="seamline-test-pub")
    try:
        assert subscribed.wait(10)
        pub.connect(mqtt_broker.host, mqtt_broker.port)
        pub.loop_start()
        verdict = m.Verdict(
            item_id="line1-0-000007",
            site_id="site1",
            line_id="line1",
            station_id="st1",
            source="edge",
            final=True,
            decision="pass",
            route="auto",
            priority="none",
            confidence=1.0,
            models=m.ModelVersions(detector="d@1"),
            timestamps=m.VerdictTimestamps(captured_at=m.utcnow(), decided_at=m.utcnow()),
        )
        pub.publish(topics.verdicts, verdict.to_json(), qos=1).wait_for_publish(10)
        assert got.wait(10)
    finally:
        for c in (pub, sub):
            c.loop_stop()
            c.disconnect()
    payload = json.loads(received[0])
    validate_payload("verdicts", payload)
    assert payload["item_id"] == "line1-0-000007" and payload["verdict_id"] == verdict.verdict_id
