"""Review tests: an audit store on SQLite or PostgreSQL (``postgres_url``), a real console, reviewers logged
in over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloud.storage.audit import AuditStore
from harness.review import ConsoleThread, write_config


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_store(request, tmp_path: Path) -> Iterator[AuditStore]:
    url = (
        f"sqlite:///{tmp_path / 'audit.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    store = AuditStore.from_url(url)
    yield store
    store.engine.dispose()


@pytest.fixture
def console_audit_url() -> str | None:
    """The console's audit database; None: SQLite under the data folder. Override to run on PostgreSQL."""
    return None


@pytest.fixture
def console(tmp_path: Path, mqtt_broker, console_audit_url) -> Iterator[ConsoleThread]:
    config = write_config(
        tmp_path / "seamline.yaml",
        mqtt_url=mqtt_broker.url,
        data_dir=tmp_path / "data",
        audit_url=console_audit_url,
    )
    running = ConsoleThread(config).start()
    try:
        yield running
    finally:
        running.stop()


class Reviewer:
    """A logged-in browser-less reviewer: the session cookie and its CSRF token."""

    def __init__(self, base_url: str, reviewer_id: str, password: str) -> None:
        self.reviewer_id = reviewer_id
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)
        page = self.http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
        answer = self.http.post(
            "/login",
            data={"csrf_token": token, "reviewer_id": reviewer_id, "password": password, "next": "/"},
        )
        assert answer.status_code == 303, answer.text
        self.csrf = re.search(r'name="csrf-token" content="([^"]+)"', self.http.get("/").text)[1]

    def post(self, path: str, headers: dict | None = None, **kwargs) -> httpx.Response:
        return self.http.post(path, headers={"X-CSRF-Token": self.csrf, **(headers or {})}, **kwargs)


@pytest.fixture
def login(console):
    def _login(reviewer_id: str, password: str = "review-pass-1", role: str = "reviewer") -> Reviewer:
        try:
            console.service.reviewers.add(reviewer_id, password, role=role)
        except ValueError:
            pass
        return Reviewer(console.url, reviewer_id, password)

    return _login


class LineRecorder:
    """Records verdicts and review events on one line, each checked against the contract's schema."""

    def __init__(self, broker_url: str, root: str, site: str = "s1", line: str = "l1") -> None:
        import json
        import threading
        import time

        from seamline.comms.mqtt import MqttBus
        from seamline.config.models import MqttConfig
        from seamline.contract.mqtt import LineTopics, validate_payload

        self.verdicts: list[dict] = []
        self.reviews: list[dict] = []
        self._lock = threading.Lock()
        topics = LineTopics(root, site, line)

        def keep(kind: str, into: list):
            def handler(_topic, payload):  # type: ignore[no-untyped-def]
                data = json.loads(payload)
                validate_payload(kind, data)
                with self._lock:
                    into.append(data)

            return handler

        self.bus = MqttBus(
            MqttConfig(url=broker_url), client_id=f"review-rec-{time.time_ns()}", persistent_session=False
        )
        self.bus.subscribe(topics.verdicts, keep("verdicts", self.verdicts))
        self.bus.subscribe(topics.reviews, keep("reviews", self.reviews))
        self.bus.start()
        assert self.bus.wait_connected(10)
        time.sleep(0.3)  # let the subscriptions settle before anything is published

    def stop(self) -> None:
        self.bus.stop()


@pytest.fixture
def recorder(console, mqtt_broker) -> Iterator[LineRecorder]:
    rec = LineRecorder(mqtt_broker.url, console.config.mqtt.topic_root)
    yield rec
    rec.stop()
