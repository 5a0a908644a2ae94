"""Garments per second that one and three cloud service replicas sustain on the same parts.

Run: .venv/bin/python bench/cloud_replicas.py [--per-line 60] [--lines 4] [--vllm-servers 1]

Both arms run in one process, one after the other, on the same parts: `seamline cloud serve` processes on one
PostgreSQL database (127.0.0.1:5432) and one S3 store (rclone), verdicts to a real broker, the same vLLM CPU
server(s) with the tiny Qwen2.5-VL, and one edge spool and uplink per line, each pre-filled with the same
garments. The clock runs from the moment the edges start sending to the last verdict on the broker, so
start-up is not counted. The baseline is one replica (issue 14: "the garments/s that three replicas sustain
here against one"); a second single-replica arm with three times the work in flight shows how much of the gain
is concurrency that one replica could also have.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edge.crops import Crop
from edge.uplink.client import Uplink, UplinkConfig, insecure_channel_factory
from edge.uplink.convert import garment_message
from edge.uplink.spool import Spool
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig
from seamline.contract.mqtt import every_line_topic
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.localbroker import free_port, local_broker
from seamline.synth.crops import defect_crops

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.postgres import fresh_postgres_database  # noqa: E402  (the same set-up as the tests)
from harness.replicas import CloudReplica  # noqa: E402
from harness.s3 import ACCESS_KEY, SECRET_KEY, start_s3_server, stop_s3_server  # noqa: E402


def _message(item_id: str, line_id: str, jpeg: bytes) -> bytes:
    crop = Crop("v0-c0", 0, (100.0, 100.0, 160.0, 160.0), (76, 76, 184, 184), 0.8, "defect", jpeg)
    now = datetime.now(UTC)
    return garment_message(
        item_id=item_id,
        site_id="site1",
        line_id=line_id,
        station_id="st1",
        captured_at=now,
        deadline_at=now + timedelta(seconds=600),
        view_sizes=[(720, 1280)],
        camera_ids=["top"],
        crops=[crop],
        detector_version="tiny@bench",
    ).SerializeToString()


def run(
    replica_count: int, in_flight: int, args, broker_url: str, base_urls: list[str], model: str, s3_url: str
) -> dict:
    lines = [f"line{n + 1}" for n in range(args.lines)]
    root = f"bench-replicas-{replica_count}-{time.time_ns()}"
    crops = defect_crops(16, seed=3, pad=20)
    with fresh_postgres_database() as audit_url, tempfile.TemporaryDirectory() as tmp:
        if audit_url is None:
            raise SystemExit("this benchmark needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust)")
        workdir = Path(tmp)
        cloud = {
            "lines": [{"site_id": "site1", "line_id": line} for line in lines],
            "audit_url": audit_url,
            "crop_store": s3_url,
            "classifier": {"base_url": base_urls, "model": model},
            "max_garments_in_flight": in_flight,
        }
        mqtt = {"url": broker_url, "topic_root": root}
        replicas = [
            CloudReplica(workdir, f"replica-{i}", mqtt=mqtt, cloud=cloud) for i in range(replica_count)
        ]
        arrived: dict[str, float] = {}
        ids: dict[str, set[str]] = defaultdict(set)

        def on_verdict(_topic: str, payload: bytes) -> None:
            data = json.loads(payload)
            arrived.setdefault(data["item_id"], time.monotonic())
            ids[data["item_id"]].add(data["verdict_id"])

        recorder = MqttBus(MqttConfig(url=broker_url), client_id=f"rec-{root}", persistent_session=False)
        recorder.subscribe(every_line_topic(root, "verdicts"), on_verdict)
        recorder.start()
        recorder.wait_connected(10)
        uplinks = []
        try:
            for replica in replicas:
                replica.start()
            for replica in replicas:
                replica.wait_serving(300)
            addresses = [r.address for r in replicas]
            for n, line in enumerate(lines):
                spool = Spool(workdir / f"edge-{line}" / "spool.db")
                for i in range(args.per_line):
                    item_id = f"{line}-{i:04d}"
                    spool.put(item_id, _message(item_id, line, crops[(n + i) % len(crops)]))
                order = addresses[n % len(addresses) :] + addresses[: n % len(addresses)]
                uplinks.append(
                    Uplink(
                        spool,
                        insecure_channel_factory("ipv4:" + ",".join(order), max_message_bytes=8 << 20),
                        pb.AgentHello(agent_id=f"edge-{line}", site_id="site1", line_id=line),
                        UplinkConfig(ack_timeout_s=60),
                    )
                )
            total = args.lines * args.per_line
            started = time.monotonic()
            for uplink in uplinks:
                uplink.start()
            limit = started + 900
            while len(arrived) < total and time.monotonic() < limit:
                time.sleep(0.1)
            elapsed = max(arrived.values()) - started if arrived else float("nan")
            accepted = [r.metric("seamline_cloud_garments_accepted_total") for r in replicas]
        finally:
            for uplink in uplinks:
                uplink.stop()
            for replica in replicas:
                replica.stop()
            recorder.stop()
    return {
        "replicas": replica_count,
        "in_flight": in_flight,
        "verdicts": len(arrived),
        "expected": total,
        "seconds": elapsed,
        "per_s": len(arrived) / elapsed,
        "accepted": accepted,
        "one_id_each": all(len(v) == 1 for v in ids.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=4, help="edges, one line each")
    parser.add_argument("--per-line", type=int, default=60, help="garments per line (one crop each)")
    parser.add_argument("--vllm-servers", type=int, default=1, help="vLLM CPU servers shared by all replicas")
    parser.add_argument(
        "--in-flight", type=int, default=32, help="cloud.max_garments_in_flight per replica (its default)"
    )
    args = parser.parse_args()

    from cloud.classifiers.vllm_server import start_vllm_server
    from seamline.modelzoo.cache import ensure_tiny_models

    os.environ.setdefault("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    model = "tiny-qwen2.5-vl"
    servers = [
        start_vllm_server(ensure_tiny_models().qwen, port=free_port(), served_model_name=model)
        for _ in range(args.vllm_servers)
    ]
    for server in servers:
        print(f"vLLM (CPU, tiny Qwen2.5-VL) ready after {server.wait_ready(600):.0f} s")
    broker = local_broker("mqtt://127.0.0.1:1883")
    tmp = tempfile.TemporaryDirectory()
    s3 = start_s3_server(Path(tmp.name) / "s3")
    (s3.root / "crops").mkdir(exist_ok=True)
    try:
        urls = [s.openai_base_url for s in servers]
        s3_url = s3.crop_store_url("crops")
        # the baseline, one replica with three times the work in flight (the same concurrency as three), three
        arms = [(1, args.in_flight), (1, 3 * args.in_flight), (3, args.in_flight)]
        rows = [run(n, in_flight, args, broker.url, urls, model, s3_url) for n, in_flight in arms]
    finally:
        stop_s3_server(s3)
        tmp.cleanup()
        broker.stop()
        for server in servers:
            server.stop()

    table = Table(
        title=f"Cloud replicas: {args.lines} edges x {args.per_line} garments, {args.vllm_servers} vLLM CPU "
        f"server(s), PostgreSQL + S3 ({platform.machine()}, {os.cpu_count()} CPUs, tiny Qwen2.5-VL)"
    )
    columns = ("replicas", "in flight each", "verdicts", "seconds", "garments/s", "vs 1 replica", "accepted")
    for column in columns:
        table.add_column(column)
    base = rows[0]["per_s"]
    for row in rows:
        table.add_row(
            str(row["replicas"]),
            str(row["in_flight"]),
            f"{row['verdicts']} / {row['expected']}" + ("" if row["one_id_each"] else " (duplicate ids!)"),
            f"{row['seconds']:.1f}",
            f"{row['per_s']:.2f}",
            f"{row['per_s'] / base:.2f}x",
            " / ".join(f"{a:.0f}" for a in row["accepted"]),
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
