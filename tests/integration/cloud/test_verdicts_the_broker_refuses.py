"""Verdicts the broker will not take stay unpublished, are retried with backoff and reported (ERROR log with
the reason, metrics, NOT_SERVING on gRPC health), and go out once the broker takes them, without a restart.

A Mosquitto started here with a password file and an ACL; the classifier's endpoint is down, so every verdict
is the fail-safe one (people review)."""

import asyncio
import logging
import shutil
import subprocess
import time
import urllib.request

import pytest

from cloud.config import CloudConfig
from harness.replicas import serving
from seamline.config.models import SeamlineConfig
from tests.fixtures.secured_broker import start_secured_broker
from tests.integration.cloud.test_cloud_service import ServiceThread, _garments
from tests.integration.cloud.test_no_garment_left_behind import _send_and_cut
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration]


def _metric(service, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics") as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def _service(tmp_path, mqtt) -> ServiceThread:
    config = SeamlineConfig.model_validate(
        {"grpc": {"listen_address": "127.0.0.1:0"}, "storage": {"data_dir": str(tmp_path / "data")}}
    ).model_copy(update={"mqtt": mqtt})
    cloud = CloudConfig.model_validate(
        {
            "lines": [{"site_id": "site1", "line_id": "line1"}],
            "classifier": {"base_url": "http://127.0.0.1:9/v1", "retries": 0, "timeout_s": 2},
            "sweep_interval_s": 0.2,
            "retry_initial_s": 0.3,
            "retry_max_s": 1.0,
            "publish_grace_s": 1.0,
            "metrics_address": "127.0.0.1:0",
        }
    )
    return ServiceThread(config, cloud)


def _send(port: int, count: int, seed: int) -> set[str]:
    garments = _garments("line1", count, seed=seed)
    acked = asyncio.run(_send_and_cut(f"127.0.0.1:{port}", [payload for _, payload in garments], 5.0))
    assert acked == {item_id for item_id, _ in garments}
    return acked


def test_verdicts_an_acl_refuses_are_kept_retried_reported_and_sent_once_allowed(tmp_path, caplog):
    (tmp_path / "broker").mkdir()
    broker = start_secured_broker(tmp_path / "broker")
    root = f"refused{time.time_ns()}"  # the ACL names no such topic: every verdict publish is refused
    caplog.set_level(logging.WARNING)
    service = _service(tmp_path, broker.mqtt_config().model_copy(update={"topic_root": root}))
    try:
        _send(service.port, 3, seed=21)
        audit, cloud = service.service.audit, service.service
        assert wait_until(lambda: audit.counts() == {"classified": 3}, timeout=30), audit.counts()
        # retried with backoff, not once and forgotten
        assert wait_until(lambda: _metric(cloud, "seamline_cloud_verdict_publish_refused_total") >= 9, 30)
        assert wait_until(lambda: not serving(service.port), timeout=10)
        assert _metric(cloud, "seamline_cloud_publishing_ok") == 0
        assert _metric(cloud, "seamline_cloud_verdicts_unpublished") == 3
        assert audit.counts() == {"classified": 3}  # still unpublished, still there
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("refuses every verdict" in e and "Not authorized" in e for e in errors), errors

        broker.grant_publish(root)  # the operator fixes the ACL; no restart
        assert wait_until(lambda: audit.counts() == {"published": 3}, timeout=30), audit.counts()
        assert wait_until(lambda: serving(service.port), timeout=10)
        assert _metric(cloud, "seamline_cloud_verdicts_published_total") == 3
        assert _metric(cloud, "seamline_cloud_publishing_ok") == 1
    finally:
        service.stop()
        broker.mosquitto.stop()


def test_a_broker_refusing_the_login_is_reported_and_verdicts_go_out_once_it_accepts(tmp_path, caplog):
    (tmp_path / "broker").mkdir()
    broker = start_secured_broker(tmp_path / "broker")
    root = f"{broker.allowed_topic}/login{time.time_ns()}"
    caplog.set_level(logging.WARNING)
    service = _service(
        tmp_path, broker.mqtt_config(wrong_password=True).model_copy(update={"topic_root": root})
    )
    try:
        _send(service.port, 2, seed=22)  # the ingress still takes garments: they are kept for their verdicts
        audit, cloud = service.service.audit, service.service
        assert wait_until(lambda: audit.counts() == {"classified": 2}, timeout=30), audit.counts()
        assert wait_until(lambda: not serving(service.port), timeout=10)
        assert _metric(cloud, "seamline_cloud_mqtt_connected") == 0
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("no connection to the MQTT broker" in e and "Not authorized" in e for e in errors), errors

        # the plant's broker learns the password the service has (its password file, reloaded on SIGHUP)
        wrong = broker.wrong_password_file.read_text().strip()
        passwords = broker.acl_file.parent / "mosquitto.passwd"
        subprocess.run(
            [shutil.which("mosquitto_passwd"), "-b", str(passwords), broker.username, wrong], check=True
        )
        broker.grant_publish(root)  # SIGHUP: reloads the password file too
        assert wait_until(lambda: audit.counts() == {"published": 2}, timeout=30), audit.counts()
        assert wait_until(lambda: serving(service.port), timeout=10)
    finally:
        service.stop()
        broker.mosquitto.stop()
