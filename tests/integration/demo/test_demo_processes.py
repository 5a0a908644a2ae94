"""`seamline demo` stopped or killed while its cloud starts vLLM: no process it started survives it."""

import os
import signal
import subprocess
import sys

import pytest

from tests.processes import describe, kill_survivors, process_tree, survivors
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]


@pytest.mark.parametrize(
    ("sig", "exit_code"),
    [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGKILL, -signal.SIGKILL)],
    ids=["SIGTERM", "SIGKILL"],
)
def test_no_part_of_the_demo_outlives_it(tmp_path, sig, exit_code):
    out = tmp_path / "demo"
    demo = subprocess.Popen(
        # mqtt://127.0.0.1:1 answers nothing, so the demo starts its own broker
        [
            sys.executable,
            "-m",
            "seamline",
            "demo",
            "-o",
            str(out),
            "--no-live",
            "--mqtt-url",
            "mqtt://127.0.0.1:1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    cloud_log = out / "logs" / "cloud.log"
    tree: dict[int, str] = {}
    try:
        # broker, cloud service, and the vLLM server the cloud service starts (its start-up takes a minute)
        assert wait_until(lambda: cloud_log.exists() and "starting local vLLM" in cloud_log.read_text(), 120)
        tree = process_tree(demo.pid)
        assert len(tree) >= 4, tree
        demo.send_signal(sig)
        output, _ = demo.communicate(timeout=120)
        assert demo.returncode == exit_code, output
        assert wait_until(lambda: not survivors(tree), timeout=10), describe(survivors(tree))
    finally:
        kill_survivors(tree or process_tree(demo.pid))
