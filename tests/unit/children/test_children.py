"""No child outlives a command that started it: real processes, a stand-in supervisor, a sleeping child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.processes import process_tree, survivors

REPO = Path(__file__).resolve().parents[3]

# A command that starts a child in its own session (as vLLM is started) and stops it on the way out; the child
# ignores SIGTERM when asked to, so stopping it takes until end_process's timeout.
SUPERVISOR = """
import subprocess, sys, time
from seamline.children import StopRequested, end_process, stop_on_signals

ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN)" if sys.argv[1] == "stubborn" else "pass"
child_code = f"import signal, time\\n{ignore}\\nprint('started', flush=True)\\ntime.sleep(120)"
with stop_on_signals():
    child = subprocess.Popen([sys.executable, "-c", child_code], start_new_session=True)
    try:
        while True:
            time.sleep(1)
    except StopRequested as stop:
        print("stopping on", stop, flush=True)
    finally:
        end_process(child, timeout=2, group=True)
        print("stopped", flush=True)
"""


def _start_supervisor(kind: str) -> subprocess.Popen:
    """The stand-in supervisor, once its child (which prints to the same pipe) has started."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SUPERVISOR), kind],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None and proc.stdout.readline() == "started\n"
    return proc


def _tree_of_two(proc: subprocess.Popen) -> dict[int, str]:
    tree = process_tree(proc.pid)
    assert len(tree) == 2, tree
    return tree


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_the_children(sig):
    proc = _start_supervisor("plain")
    tree = _tree_of_two(proc)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert f"stopping on {signal.Signals(sig).name}" in out and out.endswith("stopped\n")
    assert survivors(tree) == []


def test_a_repeated_signal_does_not_cut_the_clean_up_short():
    proc = _start_supervisor("stubborn")
    tree = _tree_of_two(proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # end_process now waits 2 s for the child that ignores SIGTERM before it kills it
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert out == "stopping on SIGTERM\nstopped\n"
    assert time.monotonic() - started >= 2
    assert survivors(tree) == []
