"""Recovery after a cloud outage: do the garments still on the belt get their verdicts in time?

Run: .venv/bin/python bench/recovery_after_outage.py [--backlog 200] [--live 30] [--rate 2] [--deadline-s 8]

The scenario of issue 12 case 8: the cloud was down while the line ran, so the edge's spool holds a backlog
of garments whose fail-safe command is already out. The cloud comes back; the edge reconnects and drains the
spool while new garments keep arriving, each with a deadline ``--deadline-s`` after capture. What matters to
the line is how many of those live garments get their verdict before their deadline.

Both sides run in one process on the same parts (a real broker, the cloud service on a vLLM CPU server with
the tiny Qwen2.5-VL, the edge's spool and uplink over gRPC), once as before (the edge sends oldest first and
the cloud classifies in arrival order) and once as now (live garments first on both sides:
``Spool.in_send_order`` at the edge, ``LiveFirstQueue`` in the cloud). "Before" is reproduced with the current
code: an edge ``live_margin_s`` longer than any deadline makes every garment backlog (oldest first), and the
cloud's queue is a plain FIFO.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cloud.config import CloudConfig
from cloud.service import CloudService
from edge.crops import Crop
from edge.uplink.client import Uplink, UplinkConfig, insecure_channel_factory
from edge.uplink.convert import garment_message
from edge.uplink.spool import Spool
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig, SeamlineConfig
from seamline.contract.mqtt import LineTopics
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.localbroker import free_port, local_broker
from seamline.synth.crops import defect_crops


def _message(item_id: str, jpeg: bytes, captured_at: datetime, deadline_s: float) -> bytes:
    crop = Crop("v0-c0", 0, (100.0, 100.0, 160.0, 160.0), (76, 76, 184, 184), 0.8, "defect", jpeg)
    return garment_message(
        item_id=item_id,
        site_id="site1",
        line_id="line1",
        station_id="st1",
        captured_at=captured_at,
        deadline_at=captured_at + timedelta(seconds=deadline_s),
        view_sizes=[(720, 1280)],
        camera_ids=["top"],
        crops=[crop],
        detector_version="tiny@bench",
    ).SerializeToString()


class _CloudThread:
    def __init__(self, config: SeamlineConfig, cloud: CloudConfig, *, fifo: bool) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.service = CloudService(config, cloud)

        async def start() -> int:
            if fifo:  # the cloud before: classification in arrival order
                self.service.queue = asyncio.Queue()  # type: ignore[assignment]
            return await self.service.start()

        self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(120)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.service.stop(grace=2), self.loop).result(120)
        self.loop.call_soon_threadsafe(self.loop.stop)


def run(
    mode: str, args, broker_url: str, base_url: str, model: str, crops: list[bytes], workdir: Path
) -> dict:
    before = mode == "before"
    root = f"bench-recovery-{mode}-{time.time_ns()}"
    config = SeamlineConfig.model_validate(
        {
            "mqtt": {"url": broker_url, "topic_root": root},
            "grpc": {"listen_address": f"127.0.0.1:{free_port()}"},
            "storage": {"data_dir": str(workdir / mode)},
        }
    )
    cloud = CloudConfig.model_validate(
        {
            "lines": [{"site_id": "site1", "line_id": "line1"}],
            "classifier": {"base_url": base_url, "model": model},
            "max_garments_in_flight": 8,
        }
    )
    arrived: dict[str, float] = {}
    recorder = MqttBus(MqttConfig(url=broker_url), client_id=f"rec-{root}", persistent_session=False)
    recorder.subscribe(
        LineTopics(root, "site1", "line1").verdicts,
        lambda topic, payload: arrived.setdefault(json.loads(payload)["item_id"], time.time()),
    )
    recorder.start()
    recorder.wait_connected(10)

    # The outage: the backlog was captured over the last minutes; every deadline has passed.
    spool = Spool(workdir / mode / "spool.db")
    now = datetime.now(UTC)
    for i in range(args.backlog):
        captured = now - timedelta(seconds=60 + args.backlog - i)
        spool.put(
            f"backlog-{i:04d}",
            _message(f"backlog-{i:04d}", crops[i % len(crops)], captured, args.deadline_s),
            deadline_at=(captured + timedelta(seconds=args.deadline_s)).timestamp(),
        )
    service = _CloudThread(config, cloud, fifo=before)
    uplink = Uplink(
        spool,
        insecure_channel_factory(f"127.0.0.1:{service.port}", max_message_bytes=8 << 20),
        pb.AgentHello(agent_id="edge-bench", site_id="site1", line_id="line1", contract_version="v1"),
        UplinkConfig(ack_timeout_s=60, live_margin_s=1e9 if before else 0.5),
    )
    reconnected = time.time()
    uplink.start()
    deadlines: dict[str, float] = {}
    for i in range(args.live):  # the line goes on: live garments arrive while the backlog drains
        captured = datetime.now(UTC)
        item_id = f"live-{i:04d}"
        deadline = captured + timedelta(seconds=args.deadline_s)
        deadlines[item_id] = deadline.timestamp()
        spool.put(
            item_id,
            _message(item_id, crops[i % len(crops)], captured, args.deadline_s),
            deadline_at=deadline.timestamp(),
        )
        uplink.notify()
        time.sleep(1 / args.rate)
    total = args.backlog + args.live
    limit = time.time() + 900
    while len(arrived) < total and time.time() < limit:
        time.sleep(0.2)
    uplink.stop()
    service.stop()
    recorder.stop()
    spool.close()
    in_time = sum(
        1 for item_id, deadline in deadlines.items() if arrived.get(item_id, float("inf")) <= deadline
    )
    live_arrivals = [arrived[i] for i in deadlines if i in arrived]
    return {
        "mode": mode,
        "live_in_time": in_time,
        "live": args.live,
        "first_live_verdict_s": (min(live_arrivals) - reconnected) if live_arrivals else float("nan"),
        "all_verdicts_s": (max(arrived.values()) - reconnected) if arrived else float("nan"),
        "verdicts": len(arrived),
        "expected": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=200)
    parser.add_argument("--live", type=int, default=30)
    parser.add_argument("--rate", type=float, default=2.0, help="live garments per second")
    parser.add_argument("--deadline-s", type=float, default=8.0, help="capture to deadline")
    args = parser.parse_args()

    from cloud.classifiers.vllm_server import start_vllm_server
    from seamline.modelzoo.cache import ensure_tiny_models

    model = "tiny-qwen2.5-vl"
    server = start_vllm_server(ensure_tiny_models().qwen, port=free_port(), served_model_name=model)
    print(f"vLLM (CPU, tiny Qwen2.5-VL) ready after {server.wait_ready(600):.0f} s")
    broker = local_broker("mqtt://127.0.0.1:1883")
    crops = defect_crops(16, seed=3, pad=20)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = [
                run(mode, args, broker.url, server.openai_base_url, model, crops, Path(tmp))
                for mode in ("before", "now")
            ]
    finally:
        broker.stop()
        server.stop()

    table = Table(
        title=f"Recovery after an outage: backlog {args.backlog}, {args.live} live garments at "
        f"{args.rate}/s, deadline {args.deadline_s:.0f} s ({platform.machine()}, tiny Qwen2.5-VL on CPU)"
    )
    for column in ("order", "live verdicts in time", "first live verdict", "all verdicts", "verdicts"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            "oldest first (before)" if row["mode"] == "before" else "live first (now)",
            f"{row['live_in_time']} / {row['live']}",
            f"{row['first_live_verdict_s']:.1f} s",
            f"{row['all_verdicts_s']:.1f} s",
            f"{row['verdicts']} / {row['expected']}",
        )
    Console().print(table)
    before, now = rows
    print(
        f"ratio: live verdicts in time {now['live_in_time']} vs {before['live_in_time']}; first live verdict "
        f"{before['first_live_verdict_s'] / max(now['first_live_verdict_s'], 1e-6):.1f}x sooner"
    )


if __name__ == "__main__":
    main()
