"""Child processes that end with the command that started them.

Seamline's commands start servers: ``seamline cloud vllm`` and ``seamline cloud serve`` a vLLM server, the
demo a broker and its parts, the tests a broker and vLLM. However such a command ends, its children must end
with it, or they keep their port and their memory. Two ways out are covered:

- A stop request, SIGTERM or SIGINT. Python's default SIGTERM ends the process on the spot, skipping every
  ``finally``; within ``stop_on_signals()`` both signals raise ``StopRequested`` in the main thread instead,
  so the ``finally`` and ``with`` blocks that stop the children run. Only the first signal does: a repeat
  would cut that clean-up short, so it is ignored.
- A death nothing in the process sees: SIGKILL, the OOM killer, a crash. ``start_child`` starts a child
  through a launcher, this file run as a script, that asks the kernel to SIGKILL the child when its parent
  dies (Linux ``PR_SET_PDEATHSIG``) and then ``exec``s the command: it works for any program (mosquitto
  too), and needs no ``preexec_fn``, which can deadlock a process that has threads. The kernel sends that
  signal when the *thread* that started the child ends, so start children from the main thread (or one that
  lives as long as they should); and it forgets it when the child changes its user (as mosquitto started by
  root does unless told not to). Processes a child starts itself (vLLM's engine core and worker) call
  ``die_with_parent`` at start.

``end_process`` stops a child: SIGTERM, then SIGKILL after a timeout, to its whole process group if it leads
one.

This module imports only the standard library: it runs as the launcher, isolated (``python -I``).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_LINUX = sys.platform.startswith("linux")
CHILDREN_LAUNCHER = __file__  # run as a script: python -I CHILDREN_LAUNCHER PARENT_PID PROGRAM [ARG ...]


class StopRequested(BaseException):
    """SIGTERM or SIGINT arrived within ``stop_on_signals``: unwind, stopping what was started.

    Like ``KeyboardInterrupt``, not an ``Exception``, so no ``except Exception`` stops the unwinding; not a
    ``KeyboardInterrupt``, which typer turns into exit code 130 whatever the signal was.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within: the first SIGTERM or SIGINT raises ``StopRequested`` in the main thread; repeats are ignored.

    Call it in the main thread (Python runs signal handlers there only). The previous handlers come back on
    exit.
    """
    requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal requested
        if not requested:  # a repeat would interrupt the clean-up the first one started
            requested = True
            raise StopRequested(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def signal_group(group: int, sig: int) -> bool:
    """Send ``sig`` to process group ``group``; False if no process is left in it."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a zombie leader not yet reaped, or a reused id: nothing of ours to signal
        return False
    return True


def end_process(process: subprocess.Popen, timeout: float = 5.0, *, group: bool = False) -> int:
    """SIGTERM ``process``, SIGKILL it if it is still there after ``timeout`` seconds; returns its exit code.

    With ``group`` (for a child started in its own session) the signals go to its whole process group, and
    what is left in the group once the leader has gone gets up to 5 s more, then SIGKILL.
    """

    def send(sig: int) -> None:
        if group:
            signal_group(process.pid, sig)
        else:
            process.send_signal(sig)

    if process.poll() is None:
        send(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("process %d ignored SIGTERM for %.0f s; killing it", process.pid, timeout)
            send(signal.SIGKILL)
            process.wait()
    if group:  # the leader can be gone while processes it started linger in its group
        deadline = time.monotonic() + min(timeout, 5.0)
        while signal_group(process.pid, 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        if signal_group(process.pid, signal.SIGKILL):
            logger.warning("killed processes left in process group %d", process.pid)
    return process.returncode


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent, ``parent_pid``, ends; end now if it has.

    Linux only; elsewhere this does nothing.
    """
    if not _LINUX:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # it ended before the kernel was asked: no signal would come
        os.kill(os.getpid(), signal.SIGKILL)


def start_child(args: Sequence[str | os.PathLike[str]], **popen_kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(args, **popen_kwargs)`` for a child that dies with this process (see above).

    Raises:
        FileNotFoundError: ``args[0]`` is no program on the child's ``PATH``, as Popen would.
    """
    command = [os.fspath(arg) for arg in args]
    if not _LINUX:
        return subprocess.Popen(command, **popen_kwargs)
    env = popen_kwargs.get("env") or os.environ
    if shutil.which(command[0], path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(2, "No such file or directory", command[0])
    # -I: the launcher needs only the standard library, whatever PYTHONPATH the child is given
    launcher = [sys.executable, "-I", CHILDREN_LAUNCHER, str(os.getpid())]
    return subprocess.Popen([*launcher, *command], **popen_kwargs)


if __name__ == "__main__":
    # The launcher start_child runs
    die_with_parent(int(sys.argv[1]))
    os.execvp(sys.argv[2], sys.argv[2:])
