"""A real MQTT broker on this machine, for tests and the one-command demo.

Order of preference: a broker already answering at the given URL; else ``mosquitto`` started on a free
port from ``deploy/mosquitto/mosquitto.conf``; else an embedded amqtt broker in a background thread.
All three speak real MQTT over TCP; nothing here is a mock.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from seamline.errors import MissingDependencyError, SeamlineError

logger = logging.getLogger(__name__)

BrokerKind = Literal["external", "mosquitto", "embedded"]
MOSQUITTO_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "mosquitto.conf"


class BrokerStartError(SeamlineError):
    """No broker could be found or started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mqtt_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if an MQTT broker at host:port accepts a CONNECT (a real handshake, not just an open port)."""
    # CONNECT, MQTT 3.1.1, clean session, keepalive 10 s, client id "seamline-probe".
    client_id = b"seamline-probe"
    variable = b"\x00\x04MQTT\x04\x02\x00\x0a"
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
        return False
    return len(reply) == 4 and reply[0] == 0x20 and reply[3] == 0x00  # CONNACK, accepted


@dataclass
class LocalBroker:
    """A running broker; ``stop()`` ends it if this process started it."""

    host: str
    port: int
    kind: BrokerKind
    _stop: list = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def stop(self) -> None:
        while self._stop:
            self._stop.pop()()

    def __enter__(self) -> "LocalBroker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_until_answers(host: str, port: int, timeout: float, alive: "callable[[], bool]") -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mqtt_answers(host, port, timeout=0.5):
            return
        if not alive():
            raise BrokerStartError(f"broker on {host}:{port} exited during start-up")
        time.sleep(0.05)
    raise BrokerStartError(f"broker on {host}:{port} did not answer within {timeout:.0f} s")


def start_mosquitto(port: int | None = None, workdir: Path | None = None) -> LocalBroker:
    """Start ``mosquitto`` on 127.0.0.1:port (free port if None) with the project's configuration."""
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if binary is None:
        raise BrokerStartError("mosquitto is not installed (apt-get install mosquitto)")
    port = port or free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="seamline-mosquitto-"))
    conf = MOSQUITTO_CONF.read_text(encoding="utf-8")
    conf, n = re.subn(r"(?m)^listener\s+\d+(\s+\S+)?\s*$", f"listener {port} 127.0.0.1", conf)
    if n != 1:
        raise BrokerStartError(f"{MOSQUITTO_CONF}: expected exactly one 'listener' line, found {n}")
    conf_path = workdir / "mosquitto.conf"
    conf_path.write_text(conf, encoding="utf-8")
    log = open(workdir / "mosquitto.log", "wb")  # noqa: SIM115 - lives as long as the broker
    proc = subprocess.Popen([binary, "-c", str(conf_path)], stdout=log, stderr=subprocess.STDOUT)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

    try:
        _wait_until_answers("127.0.0.1", port, 10.0, lambda: proc.poll() is None)
    except BrokerStartError:
        stop()
        raise
    logger.info("started mosquitto on 127.0.0.1:%d (pid %d)", port, proc.pid)
    return LocalBroker("127.0.0.1", port, "mosquitto", [stop])


def start_embedded(port: int | None = None) -> LocalBroker:
    """Start an amqtt broker on 127.0.0.1:port in a daemon thread with its own event loop."""
    try:
        from amqtt.broker import Broker
    except ImportError as exc:
        raise MissingDependencyError("amqtt", "dev", "The embedded MQTT broker") from exc
    for noisy in ("amqtt", "transitions"):  # per-packet INFO logs drown the tests' output
        logging.getLogger(noisy).setLevel(logging.WARNING)
    port = port or free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}", "max_connections": 1000}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    holder: dict[str, Broker] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            broker = Broker(config, loop=loop)
            loop.run_until_complete(broker.start())
            holder["broker"] = broker
        except BaseException as exc:  # reported to the starting thread
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name=f"amqtt-{port}", daemon=True)
    thread.start()
    started.wait(15)
    if failure:
        raise BrokerStartError(f"embedded broker failed to start: {failure[0]}") from failure[0]

    def stop() -> None:
        broker = holder.get("broker")
        if broker is not None:
            asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    _wait_until_answers("127.0.0.1", port, 10.0, thread.is_alive)
    logger.info("started embedded amqtt broker on 127.0.0.1:%d", port)
    return LocalBroker("127.0.0.1", port, "embedded", [stop])


def local_broker(url: str | None = "mqtt://127.0.0.1:1883", prefer: BrokerKind | None = None) -> LocalBroker:
    """A broker to use: the one at ``url`` if it answers, else mosquitto, else embedded (or ``prefer``)."""
    if prefer in (None, "external") and url:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 1883
        if mqtt_answers(host, port):
            logger.info("using the MQTT broker already running at %s:%d", host, port)
            return LocalBroker(host, port, "external")
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
