"""A real MQTT broker on this machine, for tests and the one-command demo.

Order of preference: a broker already answering at the given URL; else ``mosquitto`` started on a free
port from ``deploy/mosquitto/mosquitto.conf``; else an embedded amqtt broker in a background thread.
All three speak real MQTT over TCP; nothing here is a mock. Mosquitto speaks MQTT 5, the embedded broker only
3.1.1: a client configured for this broker takes ``LocalBroker.protocol`` (``MqttConfig.protocol``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from seamline.children import end_process, start_child
from seamline.errors import SeamlineError
from seamline.optional import require

logger = logging.getLogger(__name__)

BrokerKind = Literal["external", "mosquitto", "embedded"]
MqttProtocol = Literal["5", "3.1.1"]
MOSQUITTO_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "mosquitto.conf"


class BrokerStartError(SeamlineError):
    """No broker could be found or started."""


_PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux; 32768 elsewhere)."""
    try:
        return int(_PORT_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, chosen below the kernel's ephemeral range.

    A port the kernel picked for ``bind(0)`` comes from the ephemeral range, the same range it draws the local
    ports of outgoing connections from: between our check and the server's own bind, any process's connection
    to PostgreSQL or the broker may take it (a replica once failed to start that way). A random port below
    that range is only ever taken by a deliberate listener.
    """
    low, high = 20000, _ephemeral_low() - 1
    draw = random.SystemRandom()
    for _ in range(200) if high - low > 1000 else ():
        port = draw.randint(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connack_code(
    host: str, port: int, timeout: float = 2.0, *, protocol: MqttProtocol = "3.1.1"
) -> int | None:
    """The code of the CONNACK an anonymous CONNECT gets at host:port (0: accepted); None: no CONNACK."""
    # CONNECT, clean session, keepalive 10 s, client id "seamline-probe"; MQTT 5 adds an empty property list.
    client_id = b"seamline-probe"
    variable = b"\x00\x04MQTT\x05\x02\x00\x0a\x00" if protocol == "5" else b"\x00\x04MQTT\x04\x02\x00\x0a"
    payload = len(client_id).to_bytes(2, "big") + client_id
    body = variable + payload
    packet = b"\x10" + bytes([len(body)]) + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(packet)
            reply = s.recv(4)
            s.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return None
    # CONNACK: type, remaining length (one byte here: an MQTT 5 CONNACK's few properties stay under 128
    # bytes), acknowledge flags, return code (3.1.1) or reason code (5). A broker that does not speak MQTT 5
    # answers a version 5 CONNECT with a 3.1.1 CONNACK refusing the protocol version.
    if len(reply) < 4 or reply[0] != 0x20:
        return None
    return reply[3]


def mqtt_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if an MQTT broker at host:port accepts a CONNECT (a real handshake, not just an open port)."""
    return connack_code(host, port, timeout) == 0


def speaks_mqtt5(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if the broker at host:port accepts an anonymous MQTT 5 CONNECT."""
    return connack_code(host, port, timeout, protocol="5") == 0


@dataclass
class LocalBroker:
    """A running broker; ``stop()`` ends it if this process started it."""

    host: str
    port: int
    kind: BrokerKind
    protocol: MqttProtocol  # the newest MQTT version it speaks, for MqttConfig.protocol
    _stop: list = field(default_factory=list, repr=False)
    pid: int | None = None  # a mosquitto this process started (SIGHUP reloads its password file and ACL)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def stop(self) -> None:
        while self._stop:
            self._stop.pop()()

    def __enter__(self) -> LocalBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_until_answers(
    host: str,
    port: int,
    timeout: float,
    alive: callable[[], bool],  # type: ignore[valid-type]
    *,
    anonymous: bool = True,
    tls: bool = False,
) -> None:
    """Wait until the broker accepts an anonymous CONNECT, or (``anonymous=False``) answers one at all, or
    (``tls``: a TLS-only listener, which a plain CONNECT cannot reach) accepts a TCP connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tls:
            try:
                socket.create_connection((host, port), timeout=0.5).close()
                return
            except OSError:
                pass
        else:
            code = connack_code(host, port, timeout=0.5)
            if code == 0 or (code is not None and not anonymous):
                return
        if not alive():
            raise BrokerStartError(f"broker on {host}:{port} exited during start-up")
        time.sleep(0.05)
    raise BrokerStartError(f"broker on {host}:{port} did not answer within {timeout:.0f} s")


def start_mosquitto(
    port: int | None = None, workdir: Path | None = None, *, conf: str | None = None, tls: bool = False
) -> LocalBroker:
    """Start ``mosquitto`` on 127.0.0.1:port (free port if None) with the project's configuration.

    ``conf``: a whole mosquitto.conf instead (tests of passwords, ACLs and TLS), whose listeners the caller
    chose; ``port`` must be one of them, where the broker may refuse anonymous clients (``tls``: a TLS-only
    listener).
    """
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if binary is None:
        raise BrokerStartError("mosquitto is not installed (apt-get install mosquitto)")
    if conf is not None and port is None:
        raise ValueError("start_mosquitto(conf=...) needs the port of one of its listeners")
    port = port or free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="seamline-mosquitto-"))
    if conf is None:
        conf, n = re.subn(
            r"(?m)^listener\s+\d+(\s+\S+)?\s*$",
            f"listener {port} 127.0.0.1",
            MOSQUITTO_CONF.read_text(encoding="utf-8"),
        )
        if n != 1:
            raise BrokerStartError(f"{MOSQUITTO_CONF}: expected exactly one 'listener' line, found {n}")
        anonymous = True
    else:
        anonymous = False
    if os.geteuid() == 0:
        # Started as root, mosquitto switches to its own user, and a change of user clears the kernel's order
        # to end it with this process (seamline.children.start_child).
        conf += "user root\n"
    conf_path = workdir / "mosquitto.conf"
    conf_path.write_text(conf, encoding="utf-8")
    log = open(workdir / "mosquitto.log", "wb")  # noqa: SIM115 - lives as long as the broker
    proc = start_child([binary, "-c", str(conf_path)], stdout=log, stderr=subprocess.STDOUT)

    def stop() -> None:
        end_process(proc)
        log.close()

    try:
        _wait_until_answers(
            "127.0.0.1", port, 10.0, lambda: proc.poll() is None, anonymous=anonymous, tls=tls
        )
    except BaseException:  # a stop request (seamline.children) too
        stop()
        raise
    logger.info("started mosquitto on 127.0.0.1:%d (pid %d)", port, proc.pid)
    return LocalBroker("127.0.0.1", port, "mosquitto", "5", [stop], proc.pid)  # MQTT 5 since mosquitto 1.6


def _amqtt_config(port: int) -> dict:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}", "max_connections": 1000}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


def start_embedded(port: int | None = None) -> LocalBroker:
    """Start an amqtt broker on 127.0.0.1:port in a child process (stopping it can never hang the caller)."""
    require("amqtt", "The embedded MQTT broker", extra="dev")
    port = port or free_port()
    proc = start_child(
        [sys.executable, "-m", "seamline.localbroker", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def stop() -> None:
        end_process(proc)
        if proc.stderr:
            proc.stderr.close()

    try:
        _wait_until_answers("127.0.0.1", port, 15.0, lambda: proc.poll() is None)
    except BrokerStartError as exc:
        stop()
        raise BrokerStartError(
            f"{exc}: {(proc.stderr.read() if proc.stderr else b'').decode(errors='replace')[-500:]}"
        ) from None
    except BaseException:  # a stop request (seamline.children)
        stop()
        raise
    logger.info("started embedded amqtt broker on 127.0.0.1:%d (pid %d)", port, proc.pid)
    return LocalBroker("127.0.0.1", port, "embedded", "3.1.1", [stop])  # amqtt speaks 3.1.1 only


def _serve_embedded(port: int) -> None:
    """Run amqtt until SIGTERM/SIGINT (the child process of ``start_embedded``)."""
    import signal

    from amqtt.broker import Broker

    for noisy in ("amqtt", "transitions"):  # per-packet INFO logs are noise here
        logging.getLogger(noisy).setLevel(logging.WARNING)

    async def main() -> None:
        broker = Broker(_amqtt_config(port))
        await broker.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        try:
            await asyncio.wait_for(broker.shutdown(), 5)
        except (TimeoutError, Exception):
            pass

    asyncio.run(main())


def local_broker(url: str | None = "mqtt://127.0.0.1:1883", prefer: BrokerKind | None = None) -> LocalBroker:
    """A broker to use: the one at ``url`` if it answers, else mosquitto, else embedded (or ``prefer``)."""
    if prefer in (None, "external") and url:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 1883
        if mqtt_answers(host, port):
            logger.info("using the MQTT broker already running at %s:%d", host, port)
            return LocalBroker(host, port, "external", "5" if speaks_mqtt5(host, port) else "3.1.1")
        if prefer == "external":
            raise BrokerStartError(f"no MQTT broker answers at {url}")
    if prefer in (None, "mosquitto"):
        try:
            return start_mosquitto()
        except BrokerStartError:
            if prefer == "mosquitto":
                raise
            logger.info("mosquitto unavailable; falling back to the embedded broker", exc_info=True)
    return start_embedded()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the embedded amqtt broker (used by start_embedded).")
    parser.add_argument("--port", type=int, required=True)
    _serve_embedded(parser.parse_args().port)
