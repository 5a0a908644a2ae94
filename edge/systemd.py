"""Tell systemd how the edge agent is doing: sd_notify(3) without libsystemd
(deploy/systemd/seamline-edge.service runs the agent with ``Type=notify`` and ``WatchdogSec=``)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

logger = logging.getLogger(__name__)


def _status(text: str) -> list[str]:
    """A ``STATUS=`` field (what ``systemctl status`` shows): one line."""
    return [f"STATUS={' '.join(text.split())[:200]}"] if text else []


class SystemdNotifier:
    """sd_notify(3) without libsystemd: datagrams to ``$NOTIFY_SOCKET``; does nothing outside systemd.

    With ``Type=notify`` systemd waits for ``ready()`` before it counts the agent as started; with
    ``WatchdogSec=`` it restarts an agent whose ``watchdog()`` pings stop (a wedged detector or main loop):
    ``watchdog()`` may be called as often as one likes, it pings at half the interval systemd set. A failure
    to reach the socket is logged once and never raised: the agent must not stop because systemd went away.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace (a leading NUL byte)
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval_s: float | None = None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if self.address and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval_s = int(usec) / 1e6 / 2
        self._socket: socket.socket | None = None
        self._last_ping = float("-inf")
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; False if there is no socket or it cannot be reached."""
        if not self.address:
            return False
        message = "\n".join(fields).encode()
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.sendto(message, self.address)
                return True
            except OSError as exc:
                if not self._warned:
                    self._warned = True
                    logger.warning("cannot notify systemd at %s: %s", self.address.replace("\0", "@"), exc)
                return False

    def ready(self, status: str = "") -> None:
        """The agent runs: systemd's start job is done, and its watchdog starts counting."""
        self.notify("READY=1", *_status(status))
        self._last_ping = time.monotonic()

    def watchdog(self) -> None:
        """Ping systemd's watchdog if half its interval has passed since the last ping."""
        if self.watchdog_interval_s is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval_s:
            self._last_ping = now
            self.notify("WATCHDOG=1")

    def stopping(self, status: str = "") -> None:
        self.notify("STOPPING=1", *_status(status))

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
