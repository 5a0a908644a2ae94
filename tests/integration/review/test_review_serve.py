"""``seamline review serve`` as a process: it listens, reports ready, and stops cleanly on SIGTERM."""

import re
import signal
import subprocess
import sys

import httpx
import pytest

from harness.review import write_config

pytestmark = pytest.mark.integration


def test_review_serve_starts_and_stops_on_sigterm(tmp_path, mqtt_broker):
    config = write_config(tmp_path / "seamline.yaml", mqtt_url=mqtt_broker.url, data_dir=tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "seamline", "review", "serve", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = None
        for line in proc.stdout:  # type: ignore[union-attr]
            match = re.search(r"review console listening on (http://\S+)", line)
            if match:
                url = match[1]
                break
        assert url, "no ready line"
        assert httpx.get(f"{url}/healthz", timeout=10).json()["status"] == "ok"
        assert httpx.get(f"{url}/api/queue", timeout=10).status_code == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
