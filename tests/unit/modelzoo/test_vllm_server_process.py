"""The vLLM launcher's process handling, on stand-in processes.

The real server is in the integration tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from cloud.classifiers.vllm_server import (
    STRUCTURED_OUTPUTS_CONFIG,
    VllmServer,
    VllmServerError,
    server_environment,
    vllm_cache_dir,
)


def _spawn(code: str, log_path) -> VllmServer:
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return VllmServer(
        process, url="http://127.0.0.1:9", model="m", log_path=log_path, started_at=time.monotonic()
    )


def test_wait_ready_reports_an_early_exit_with_the_log_tail(tmp_path):
    server = _spawn("print('ValueError: model architectures failed to be inspected'); raise SystemExit(3)",
                    tmp_path / "server.log")  # fmt: skip
    with pytest.raises(VllmServerError) as error:
        server.wait_ready(timeout=30, poll_interval=0.05)
    assert "exited with code 3" in str(error.value)
    assert "failed to be inspected" in str(error.value)


def test_wait_ready_times_out_with_the_log_tail(tmp_path):
    server = _spawn(
        "import time; print('loading weights', flush=True); time.sleep(60)", tmp_path / "server.log"
    )
    with server:
        with pytest.raises(VllmServerError, match="not ready after 1 s") as error:
            server.wait_ready(timeout=1, poll_interval=0.05)
        assert "loading weights" in str(error.value)


def test_stop_ends_the_whole_process_group(tmp_path):
    # A leader that starts a child which ignores SIGTERM, as a stuck engine core might.
    child_pid_file = tmp_path / "child.pid"
    server = _spawn(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
        open({str(child_pid_file)!r}, "w").write(str(child.pid))
        time.sleep(120)
        """,
        tmp_path / "server.log",
    )
    deadline = time.monotonic() + 20
    while not child_pid_file.exists() or not child_pid_file.read_text():
        assert time.monotonic() < deadline, "stand-in server did not start its child"
        time.sleep(0.05)
    child_pid = int(child_pid_file.read_text())
    server.stop(timeout=1)
    assert server.process.poll() is not None
    deadline = time.monotonic() + 10
    while _alive(child_pid):
        assert time.monotonic() < deadline, "child outlived stop()"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes once its state is Z.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_server_environment_keeps_caches_and_temp_files_in_the_project_cache(monkeypatch):
    monkeypatch.delenv("HF_HOME", raising=False)
    env = server_environment({"EXTRA": "1"})
    base = vllm_cache_dir()
    for key in ("VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "TMPDIR", "HF_HOME", "VLLM_CONFIG_ROOT"):
        assert env[key].startswith(str(base)), key
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["EXTRA"] == "1"
    assert STRUCTURED_OUTPUTS_CONFIG == {"backend": "guidance", "disable_any_whitespace": True}
