"""Every garment the cloud acknowledges as stored reaches a published verdict, without a restart (issue 12).

Real gRPC streams cut at random points, the real service and broker; the dead-replica case writes the audit
store as a replica that died would have left it.
"""

import asyncio
import json
import random
import time
import urllib.request
from collections import defaultdict

import grpc
import pytest

from cloud.config import CloudConfig
from cloud.ingress.validation import IngressLimits, validate_garment
from cloud.storage.audit import AuditStore
from cloud.storage.crop_store import LocalCropStore
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig, SeamlineConfig
from seamline.contract.mqtt import LineTopics
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.inspection.v1 import inspection_pb2_grpc as pb_grpc
from tests.fixtures.cloud import IngressThread
from tests.integration.cloud.test_cloud_service import ServiceThread, _garments
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration]
HELLO = pb.AgentHello(agent_id="edge-t", site_id="site1", line_id="line1", contract_version="v1")


async def _send_and_cut(address: str, payloads: list[bytes], cut_after_s: float) -> set[str]:
    """Open a stream, send the garments, read acks for ``cut_after_s``, then cancel (a WAN drop). Returns the
    acknowledged item ids."""
    acked: set[str] = set()
    async with grpc.aio.insecure_channel(address) as channel:
        call = pb_grpc.InspectionServiceStub(channel).StreamGarments()
        await call.write(pb.UplinkMessage(hello=HELLO))
        await call.read()  # ServerHello
        for payload in payloads:
            await call.write(pb.UplinkMessage(garment=pb.Garment.FromString(payload)))
        try:
            async with asyncio.timeout(cut_after_s):
                while (message := await call.read()) is not grpc.aio.EOF:
                    if message.WhichOneof("kind") == "ack":
                        acked.add(message.ack.item_id)
        except TimeoutError:
            pass
        call.cancel()
    return acked


async def _deliver_with_cuts(
    address: str, garments: list[tuple[str, bytes]], seed: int, *, max_batch: int = 8, max_cut_s: float = 0.05
) -> int:
    """Send like an edge over a bad link: random batches on streams cut 0 to ``max_cut_s`` after the last
    send, and whatever was not acked is sent again on the next stream, until everything is. Returns how many
    streams it took."""
    rng = random.Random(seed)
    pending = dict(garments)
    streams = 0
    while pending:
        batch = rng.sample(sorted(pending), min(len(pending), rng.randint(1, max_batch)))
        acked = await _send_and_cut(address, [pending[i] for i in batch], rng.uniform(0.0, max_cut_s))
        streams += 1
        for item_id in acked:
            pending.pop(item_id, None)
    return streams


def test_a_garment_stored_as_its_stream_is_cut_is_still_handed_on(tmp_path):
    """Case 1 at the ingress: stored means handed on to classification, whenever the stream goes away."""
    ingress = IngressThread(tmp_path).start()
    try:
        garments = _garments("line1", 60, seed=3)
        # cut while the garment is being stored: before the fix, 8 of 60 were stored and never handed on
        asyncio.run(_deliver_with_cuts(ingress.address, garments, seed=1, max_batch=2, max_cut_s=0.01))
        stored = {item_id for item_id, _ in garments if ingress.audit.has(item_id)}
        handed_on = [record.item_id for record in ingress.accepted]
    finally:
        ingress.stop()
    assert stored == {item_id for item_id, _ in garments}
    assert sorted(handed_on) == sorted(stored)  # each exactly once


def _config(tmp_path, broker_url: str, root: str, **cloud) -> tuple[SeamlineConfig, CloudConfig]:
    config = SeamlineConfig.model_validate(
        {
            "mqtt": {"url": broker_url, "topic_root": root},
            "grpc": {"listen_address": "127.0.0.1:0"},
            "storage": {"data_dir": str(tmp_path / "data")},
        }
    )
    cloud_config = CloudConfig.model_validate(
        {"lines": [{"site_id": "site1", "line_id": "line1"}], "sweep_interval_s": 0.2, **cloud}
    )
    return config, cloud_config


class VerdictRecorder:
    """Collects the verdict ids published per item on one line."""

    def __init__(self, broker_url: str, root: str) -> None:
        self.verdicts: dict[str, set[str]] = defaultdict(set)
        self.bus = MqttBus(
            MqttConfig(url=broker_url), client_id=f"rec-{time.time_ns()}", persistent_session=False
        )
        self.bus.subscribe(LineTopics(root, "site1", "line1").verdicts, self._on_verdict)
        self.bus.start()
        assert self.bus.wait_connected(10)

    def _on_verdict(self, topic: str, payload: bytes) -> None:
        data = json.loads(payload)
        self.verdicts[data["item_id"]].add(data["verdict_id"])


@pytest.mark.vllm
@pytest.mark.slow
def test_streams_cut_at_random_points_leave_no_garment_behind(tmp_path, vllm_server, mqtt_broker):
    """The invariant, property-style: 200 garments over streams cut at random points; every garment the
    service acknowledged gets exactly one published verdict, with no restart."""
    root = f"seamline-cut{time.time_ns()}"
    config, cloud = _config(
        tmp_path,
        mqtt_broker.url,
        root,
        classifier={"base_url": vllm_server.openai_base_url, "model": vllm_server.model},
        max_garments_in_flight=16,
    )
    recorder = VerdictRecorder(mqtt_broker.url, root)
    service = ServiceThread(config, cloud)
    garments = _garments("line1", 200, seed=11)
    try:
        streams = asyncio.run(_deliver_with_cuts(f"127.0.0.1:{service.port}", garments, seed=2))
        ids = {item_id for item_id, _ in garments}
        assert wait_until(lambda: set(recorder.verdicts) == ids, timeout=600), len(recorder.verdicts)
        assert wait_until(lambda: service.service.audit.counts() == {"published": 200}, timeout=30)
    finally:
        service.stop()
        recorder.bus.stop()
    assert all(len(v) == 1 for v in recorder.verdicts.values())
    print(f"200 garments over {streams} cut streams: all published")


def _classifier_down_config(tmp_path, broker_url: str, root: str, **cloud):
    """A service whose classifier endpoint is down: every verdict is the fail-safe one (to people)."""
    return _config(
        tmp_path,
        broker_url,
        root,
        classifier={"base_url": "http://127.0.0.1:9/v1", "retries": 0, "timeout_s": 2},
        metrics_address="127.0.0.1:0",
        **cloud,
    )


@pytest.mark.parametrize(
    "owner, lease_s, replica_id",
    [("replica-that-died", 1.5, None), ("replica-7", 3600.0, "replica-7")],
    ids=["another-replica-after-its-lease", "the-same-replica-restarted-at-once"],
)
def test_a_garment_left_by_a_dead_replica_is_taken_over(tmp_path, mqtt_broker, owner, lease_s, replica_id):
    """A replica died holding a stored, unclassified garment: once its lease runs out, the sweep of a live
    replica takes the garment over, and a replica started again under the dead one's ``replica_id`` takes it
    back at once. Its verdict goes out (here a fail-safe one: the classifier's endpoint is down, which routes
    the garment to people)."""
    root = f"seamline-orphan{time.time_ns()}"
    config, cloud = _classifier_down_config(tmp_path, mqtt_broker.url, root, replica_id=replica_id)
    data = tmp_path / "data" / "cloud"
    audit = AuditStore.from_url(f"sqlite:///{data / 'audit.db'}")
    crops = LocalCropStore(data / "crops")
    ((item_id, payload),) = _garments("line1", 1, seed=5)
    record = validate_garment(pb.Garment.FromString(payload), HELLO, IngressLimits(), agent_id="edge-t")
    uris = {c.crop_id: crops.put(f"orphan/{c.crop_id}", c.image, c.encoding) for c in record.crops}
    assert audit.accept(record, uris, owner=owner, lease_s=lease_s)
    audit.engine.dispose()

    recorder = VerdictRecorder(mqtt_broker.url, root)
    service = ServiceThread(config, cloud)
    try:
        assert wait_until(lambda: item_id in recorder.verdicts, timeout=30)
        assert wait_until(lambda: service.service.audit.counts() == {"published": 1}, timeout=10)
        with urllib.request.urlopen(f"http://127.0.0.1:{service.service.metrics_port}/metrics") as reply:
            metrics = reply.read().decode()
    finally:
        service.stop()
        recorder.bus.stop()
    assert "seamline_cloud_garments_taken_over_total 1.0" in metrics
    assert "seamline_cloud_verdicts_published_total 1.0" in metrics


def test_a_second_classification_of_a_garment_publishes_the_first_verdict(tmp_path, mqtt_broker):
    """However a garment comes to be classified twice (a replica that stalled past its lease finishing after
    the one that took it over), the second classification gets the stored verdict back: the broker carries
    one verdict id and the review queue holds the garment once."""
    root = f"seamline-twice{time.time_ns()}"
    config, cloud = _classifier_down_config(tmp_path, mqtt_broker.url, root)
    ((item_id, payload),) = _garments("line1", 1, seed=6)
    record = validate_garment(pb.Garment.FromString(payload), HELLO, IngressLimits(), agent_id="edge-t")
    recorder = VerdictRecorder(mqtt_broker.url, root)
    service = ServiceThread(config, cloud)
    try:
        audit = service.service.audit
        uris = {
            c.crop_id: service.service.crop_store.put(f"t/{c.crop_id}", c.image, c.encoding)
            for c in record.crops
        }
        assert audit.accept(record, uris)  # stored, nobody's lease: the sweep takes it and classifies it
        assert wait_until(lambda: audit.counts() == {"published": 1}, timeout=30)
        first = set(recorder.verdicts[item_id])
        asyncio.run_coroutine_threadsafe(service.service.process(record), service.loop).result(30)
        assert wait_until(lambda: service.service.published >= 2, timeout=10)
        time.sleep(0.5)  # anything else on its way to the recorder
        with urllib.request.urlopen(f"http://127.0.0.1:{service.service.metrics_port}/metrics") as reply:
            metrics = reply.read().decode()
        queued = [q["item_id"] for q in audit.review_queue()]
    finally:
        service.stop()
        recorder.bus.stop()
    assert len(first) == 1 and recorder.verdicts[item_id] == first
    assert queued == [item_id]  # routed to people (the classifier is down), queued once
    assert "seamline_cloud_verdicts_superseded_total 1.0" in metrics
    assert "seamline_cloud_verdicts_recorded_total 1.0" in metrics
