"""Cloud service replicas as their users run them: `seamline cloud serve` processes, one config file each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seamline.localbroker import free_port

REPO = Path(__file__).resolve().parents[1]
SERVICE = "seamline.inspection.v1.InspectionService"


def serving(port: int) -> bool:
    """Whether the gRPC health service on ``port`` answers SERVING for the inspection service."""
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE), timeout=1
            )
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


class CloudReplica:
    """One `seamline cloud serve` process named ``name`` (its ``replica_id``) on its own ports.

    ``mqtt`` and ``cloud`` are the shared parts of the configuration (broker, audit store, crop store,
    classifier, lines...); the replica adds its listener, metrics address, replica id and data folder.
    """

    def __init__(self, workdir: Path, name: str, *, mqtt: dict[str, Any], cloud: dict[str, Any]) -> None:
        self.name = name
        self.port, self.metrics_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        self.config = workdir / f"{name}.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "mqtt": mqtt,
                    "grpc": {"listen_address": self.address},
                    "storage": {"data_dir": str(workdir / name)},
                    "cloud": {
                        **cloud,
                        "replica_id": name,
                        "metrics_address": f"127.0.0.1:{self.metrics_port}",
                    },
                }
            )
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> CloudReplica:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "seamline", "cloud", "serve", "--config", str(self.config)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def wait_serving(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not serving(self.port):
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not serving after {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.3)

    def metric(self, name: str) -> float:
        """One unlabelled sample of this replica's live /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        raise KeyError(f"{name} not in {self.name}'s /metrics")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` and wait for the exit status."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill_if_running(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"
