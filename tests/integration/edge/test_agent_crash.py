"""SIGKILL mid-stream and restart: the spool survives, nothing is lost, no garment gets a second command."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from seamline.contract.mqtt import LineTopics
from seamline.imaging import encode_jpeg
from seamline.synth import SynthConfig, SyntheticLine
from tests.fixtures.cloud import IngressThread
from tests.integration.edge.agent_harness import CommandRecorder, write_config
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]


def _frames(folder: Path, count: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    line = SyntheticLine(SynthConfig(width=640, height=360, seed=seed))
    for i in range(count):
        (folder / f"{i:04d}.jpg").write_bytes(
            encode_jpeg(np.ascontiguousarray(line.garment(i).views[0].image))
        )
    return folder


def _start(config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "seamline", "edge", "run", "--config", str(config)],
        cwd=REPO,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )


def test_sigkill_and_restart(tmp_path, mqtt_broker, tiny_onnx_detector):
    cloud = IngressThread(tmp_path / "cloud").start()
    root = f"seamline-crash{time.time_ns()}"
    recorder = CommandRecorder(mqtt_broker.url, LineTopics(root, "site1", "line1"))
    common = dict(
        broker_url=mqtt_broker.url,
        cloud_address=cloud.address,
        detector=tiny_onnx_detector,
        threshold=0.0,
        topic_root=root,
        budget_s=2.0,
    )
    (tmp_path / "run1").mkdir()
    first = write_config(
        tmp_path / "run1" / "seamline.yaml",
        source={"type": "folder", "path": str(_frames(tmp_path / "frames1", 80, 1)), "interval_s": 0.1},
        **common,
    )
    log = tmp_path / "agent.log"
    try:
        proc = _start(first, log)
        assert wait_until(lambda: len(recorder.commands) >= 10, timeout=120), log.read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        data = tmp_path / "run1" / "data" / "edge"
        with sqlite3.connect(data / "commands.db") as db:
            registered = {r[0] for r in db.execute("SELECT item_id FROM items")}
        with sqlite3.connect(data / "spool.db") as db:
            spooled = {r[0] for r in db.execute("SELECT item_id FROM garments")}
        assert len(registered) >= 10

        # Restart on the same data directory; the line goes on with a few more garments.
        second = write_config(
            tmp_path / "run1" / "seamline.yaml",
            source={"type": "folder", "path": str(_frames(tmp_path / "frames2", 3, 2))},
            **common,
        )
        proc = _start(second, log)
        assert proc.wait(120) == 0, log.read_text()[-3000:]
        with sqlite3.connect(data / "commands.db") as db:
            # decided before the kill, never acknowledged, garment past the diverter at the restart: not sent
            expired = {r[0] for r in db.execute("SELECT item_id FROM items WHERE expired_at IS NOT NULL")}
        assert wait_until(lambda: registered <= set(recorder.commands) | expired, timeout=30)
        time.sleep(1.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        recorder.stop()
        cloud.stop()
    distinct = recorder.distinct_commands()
    assert all(len(distinct[item]) == 1 for item in distinct), {
        i: c for i, c in distinct.items() if len(c) > 1
    }
    assert len(set(distinct) | expired) == len(registered) + 3
    stored = set(cloud.audit.pending(limit=1000))
    assert spooled <= stored  # what was in the spool at the kill reached the cloud after the restart
    with sqlite3.connect(tmp_path / "run1" / "data" / "edge" / "spool.db") as db:
        assert db.execute("SELECT COUNT(*) FROM garments").fetchone()[0] == 0
