"""Child processes that end with the command that started them.

Seamline's commands start servers: ``seamline cloud vllm`` and ``seamline cloud serve`` a vLLM server, the
demo a broker and its parts, the tests a broker and vLLM. However such a command ends, its children must end
with it, or they keep their port and their memory. A stop request, SIGTERM or SIGINT, is the way out covered
here: Python's default SIGTERM ends the process on the spot, skipping every ``finally``; within
``stop_on_signals()`` both signals raise ``StopRequested`` in the main thread instead, so the ``finally`` and
``with`` blocks that stop the children run. Only the first signal does: a repeat would cut that clean-up
short, so it is ignored.

``end_process`` stops a child: SIGTERM, then SIGKILL after a timeout, to its whole process group if it leads
one.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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
