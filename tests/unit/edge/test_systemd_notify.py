"""``SystemdNotifier``: sd_notify(3) over a real AF_UNIX datagram socket, as systemd's manager listens."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.systemd import SystemdNotifier


@pytest.fixture
def systemd() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket where systemd would listen, and its path (short: AF_UNIX paths stop at 108 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="sd-"))
    path = str(folder / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(2)
    yield listener, path
    listener.close()
    os.unlink(path)
    folder.rmdir()


def _messages(listener: socket.socket) -> list[str]:
    """Every datagram waiting on ``listener``."""
    listener.setblocking(False)
    found = []
    try:
        while True:
            found.append(listener.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        listener.settimeout(2)
    return found


def test_ready_and_stopping_reach_the_socket(systemd):
    listener, path = systemd
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled and notifier.watchdog_interval_s is None
    notifier.ready("edge agent a1 running")
    assert listener.recv(4096) == b"READY=1\nSTATUS=edge agent a1 running"
    notifier.stopping("stopping: camera cam0 gave up\nafter 3 attempts")
    assert listener.recv(4096) == b"STOPPING=1\nSTATUS=stopping: camera cam0 gave up after 3 attempts"
    notifier.close()


def test_the_watchdog_is_pinged_at_half_its_interval_however_often_it_is_called(systemd):
    listener, path = systemd
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert notifier.watchdog_interval_s == pytest.approx(0.2)
    notifier.ready()
    assert _messages(listener) == ["READY=1"]
    started = time.monotonic()
    while (
        time.monotonic() - started < 0.9
    ):  # the agent's loop calls it every 0.2 s at most; here far more often
        notifier.watchdog()
        time.sleep(0.001)
    pings = _messages(listener)
    assert set(pings) == {"WATCHDOG=1"} and 3 <= len(pings) <= 5, pings


def test_the_watchdog_of_another_process_is_not_ours(systemd):
    _, path = systemd
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_interval_s is None


def test_an_abstract_socket_address_is_understood():
    name = f"seamline-test-{os.getpid()}-{time.monotonic_ns()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind("\0" + name)
    listener.settimeout(2)
    try:
        SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert listener.recv(4096) == b"READY=1"
    finally:
        listener.close()


def test_outside_systemd_nothing_is_sent_and_nothing_fails():
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    notifier.ready("x")
    notifier.watchdog()
    notifier.stopping()
    assert notifier.notify("READY=1") is False


def test_a_socket_that_went_away_is_reported_once_and_never_raised(tmp_path, caplog):
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone"), "WATCHDOG_USEC": "2"})
    notifier.ready()
    for _ in range(3):
        notifier.watchdog()
    assert notifier.notify("WATCHDOG=1") is False
    assert [r.getMessage() for r in caplog.records].count(
        f"cannot notify systemd at {tmp_path / 'gone'}: [Errno 2] No such file or directory"
    ) == 1
