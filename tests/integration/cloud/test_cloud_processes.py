"""The cloud commands leave no vLLM process behind however they end, and free its port."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from seamline.localbroker import free_port
from tests.integration.cloud.test_cloud_restart import local_vllm_config
from tests.processes import describe, kill_survivors, port_open, process_tree, survivors
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]


def _seamline(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "seamline", *args],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def test_cloud_vllm_stops_its_server_on_sigterm(tmp_path, tiny_qwen_dir):
    port = free_port()
    log = tmp_path / "cloud-vllm.log"
    proc = _seamline(
        ["cloud", "vllm", str(tiny_qwen_dir), "--port", str(port), "--served-model-name", "t"], log
    )
    tree: dict[int, str] = {}
    try:
        assert wait_until(lambda: "ready after" in log.read_text(), timeout=300, interval=0.5), (
            log.read_text()
        )
        tree = process_tree(proc.pid)
        assert len(tree) >= 3, tree  # the command, vLLM's API server, its engine core (and worker)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-2000:]
        assert wait_until(lambda: not survivors(tree), timeout=10), describe(survivors(tree))
        assert not port_open(port)
    finally:
        kill_survivors(tree or process_tree(proc.pid))


def test_cloud_serve_killed_leaves_no_vllm_process_and_frees_the_ports(tmp_path, tiny_qwen_dir, mqtt_broker):
    """SIGKILL (nothing in the service runs) takes its local vLLM down too: server, engine core, worker."""
    port, vllm_port = free_port(), free_port()
    config = local_vllm_config(tmp_path, mqtt_broker.url, tiny_qwen_dir, port, vllm_port)
    log = tmp_path / "cloud.log"
    proc = _seamline(["cloud", "serve", "--config", str(config)], log)
    tree: dict[int, str] = {}
    try:
        assert wait_until(lambda: "cloud service listening" in log.read_text(), timeout=300, interval=0.5), (
            log.read_text()[-2000:]
        )
        tree = process_tree(proc.pid)
        assert len(tree) >= 3, tree  # the service, vLLM's API server, its engine core (and worker)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert wait_until(lambda: not survivors(tree), timeout=30), describe(survivors(tree))
        assert not port_open(vllm_port) and not port_open(port)
    finally:
        kill_survivors(tree or process_tree(proc.pid))
