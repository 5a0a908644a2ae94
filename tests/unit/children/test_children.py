"""No child outlives the command that started it: real processes, a stand-in command, sleeping children."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from seamline.children import CHILDREN_LAUNCHER, start_child
from tests.processes import describe, kill_survivors, process_tree, survivors
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[3]

# A command that starts a child in its own session (as vLLM is started) and stops it on the way out; the child
# ignores SIGTERM when asked to, so stopping it takes until end_process's timeout.
SUPERVISOR = """
import subprocess, sys, time
from seamline.children import StopRequested, end_process, start_child, stop_on_signals

ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN)" if sys.argv[1] == "stubborn" else "pass"
child_code = f"import signal, time\\n{ignore}\\nprint('started', flush=True)\\ntime.sleep(120)"
with stop_on_signals():
    child = start_child([sys.executable, "-c", child_code], start_new_session=True)
    try:
        while True:
            time.sleep(1)
    except StopRequested as stop:
        print("stopping on", stop, flush=True)
    finally:
        end_process(child, timeout=2, group=True)
        print("stopped", flush=True)
"""


# A command killed with SIGKILL: its child, in its own session, starts a grandchild that calls die_with_parent
# itself, as vLLM's API server and engine core do.
KILLED = """
import sys, time
from seamline.children import start_child

grandchild = (
    "import os, sys, time; from seamline.children import die_with_parent; die_with_parent(int(sys.argv[1]));"
    "print('started', flush=True); time.sleep(120)"
)
child = (
    "import os, subprocess, sys, time;"
    f"subprocess.Popen([sys.executable, '-c', {grandchild!r}, str(os.getpid())]); time.sleep(120)"
)
start_child([sys.executable, "-c", child], start_new_session=True)
time.sleep(120)
"""


def _start_supervisor(kind: str, code: str = SUPERVISOR) -> subprocess.Popen:
    """The stand-in command, once its (grand)child, which prints to the same pipe, has started."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), kind],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None and proc.stdout.readline() == "started\n"
    return proc


def _tree_of(proc: subprocess.Popen, size: int) -> dict[int, str]:
    tree = process_tree(proc.pid)
    assert len(tree) == size, tree
    return tree


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_the_children(sig):
    proc = _start_supervisor("plain")
    tree = _tree_of(proc, 2)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert f"stopping on {signal.Signals(sig).name}" in out and out.endswith("stopped\n")
    assert survivors(tree) == []


def test_a_repeated_signal_does_not_cut_the_clean_up_short():
    proc = _start_supervisor("stubborn")
    tree = _tree_of(proc, 2)
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


def test_children_and_their_children_die_with_a_killed_command():
    proc = _start_supervisor("-", KILLED)
    tree = _tree_of(proc, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    try:
        assert wait_until(lambda: not survivors(tree), timeout=5), describe(survivors(tree))
    finally:
        kill_survivors(tree)


def test_the_launcher_ends_a_child_whose_parent_has_already_gone():
    # The parent died between fork and the launcher's request to the kernel: here, pid 1 "was" the parent.
    child = subprocess.run([sys.executable, "-I", CHILDREN_LAUNCHER, "1", "sleep", "30"], timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_a_missing_program_fails_in_the_caller_as_with_popen():
    with pytest.raises(FileNotFoundError):
        start_child(["seamline-no-such-program"])
