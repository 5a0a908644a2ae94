"""The shipped broker configuration, as a plant runs it: Mosquitto started from
deploy/mosquitto/production.conf (paths and port rewritten to a test folder) with test certificates, a test
password file and the ACL ``seamline broker acl`` writes. Every role can do exactly what its row in
``seamline.contract.roles`` allows; a verdict forged with an edge's, a PLC's or a dashboard's credentials
never reaches the edge and produces no line command; a wrong password is refused."""

from __future__ import annotations

import json
import threading
import time

import pytest

from edge.linecontrol.controller import LineController
from edge.linecontrol.ledger import CommandLedger
from edge.linecontrol.mqtt_link import MqttCommandSink, verdict_listener
from seamline.comms.mqtt import MqttBus
from seamline.contract.mqtt import LineTopics, cloud_availability_topic
from seamline.contract.roles import ROLES, grants, role
from tests.fixtures.messages import verdict
from tests.fixtures.site_broker import ROOT, SITE
from tests.integration.cli.test_validate_config import REPO, _run
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _topics_of_line1() -> dict[str, str]:
    line = LineTopics(ROOT, SITE, "line1")
    return {
        "commands": line.commands,
        "verdicts": line.verdicts,
        "edge_verdicts": line.edge_verdicts,
        "reviews": line.reviews,
        "edge_availability": line.edge_availability,
        "classifier_availability": cloud_availability_topic(ROOT, "classifier", "cloud-0-50051"),
        "review_availability": cloud_availability_topic(ROOT, "review", "console-a-8080"),
        "line2_commands": LineTopics(ROOT, SITE, "line2").commands,
    }


def _matches(topic: str, filters: list[str]) -> bool:
    import paho.mqtt.client as paho

    return any(paho.topic_matches_sub(f, topic) for f in filters)


def _connect(bus: MqttBus) -> MqttBus:
    bus.start()
    assert bus.wait_connected(10), bus.last_error
    return bus


def test_the_shipped_acl_example_is_what_the_command_writes(tmp_path):
    result = _run("broker", "acl", "--site", "site1", "--line", "line1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (REPO / "deploy" / "mosquitto" / "seamline.acl").read_text()
    bad = _run("broker", "acl", "--site", "Site 1", "--line", "line1")
    assert bad.returncode == 2 and "site id" in bad.stderr


def _publish_everywhere(bus: MqttBus, topics: dict[str, str]) -> dict[str, str]:
    """Publish once on every topic; returns topic name -> "acked" or the broker's refusal."""
    outcomes: dict[str, str] = {}
    try:
        for name, topic in topics.items():
            bus.publish(
                topic,
                b"online" if name.endswith("availability") else b"{}",
                on_acked=lambda n=name: outcomes.__setitem__(n, "acked"),
                on_refused=lambda reason, n=name: outcomes.__setitem__(n, reason),
            )
        assert wait_until(lambda: len(outcomes) == len(topics), timeout=10), outcomes
    finally:
        bus.stop()
    return outcomes


def test_every_role_publishes_exactly_what_its_row_allows(site_broker):
    topics = _topics_of_line1()
    for user_role, line in [(r, "line1" if r.per_line else None) for r in ROLES]:
        user = user_role.user.format(line=line)
        write, _ = grants(user_role, ROOT, SITE, line)
        outcomes = _publish_everywhere(_connect(site_broker.bus(user)), topics)
        for name, topic in topics.items():
            allowed = _matches(topic, write)
            assert (outcomes[name] == "acked") == allowed, (user, name, outcomes[name])
            if not allowed:
                assert "Not authorized" in outcomes[name], (user, name, outcomes[name])


def test_every_role_reads_exactly_what_its_row_allows(site_broker):
    topics = _topics_of_line1()
    received: dict[str, set[str]] = {}
    lock = threading.Lock()
    readers = []
    for user_role in ROLES:
        line = "line1" if user_role.per_line else None
        user = user_role.user.format(line=line)
        received[user] = set()
        bus = site_broker.bus(user)
        for topic in topics.values():

            def keep(t, payload, user=user):  # type: ignore[no-untyped-def]
                with lock:
                    received[user].add(t)

            bus.subscribe(topic, keep)
        readers.append((user_role, line, user, _connect(bus)))
    time.sleep(0.5)
    # Each topic is written by a role allowed to (the dashboard reads them all, so it waits for the last).
    writers = {}
    for name, topic in topics.items():
        writer = next(
            r
            for r in ROLES
            if _matches(topic, grants(r, ROOT, SITE, "line2" if "line2" in name else "line1")[0])
        )
        writers[name] = writer.user.format(line="line2" if "line2" in name else "line1")
    try:
        for name, topic in topics.items():
            bus = _connect(site_broker.bus(writers[name]))
            done = threading.Event()
            bus.publish(topic, b"online" if "availability" in name else b"{}", on_acked=done.set)
            assert done.wait(10), (writers[name], topic)
            bus.stop()
        assert wait_until(lambda: topics["line2_commands"] in received["dashboard"], timeout=10)
        time.sleep(0.5)
    finally:
        for *_, bus in readers:
            bus.stop()
    for user_role, line, user, _ in readers:
        _, read = grants(user_role, ROOT, SITE, line)
        expected = {topic for topic in topics.values() if _matches(topic, read)}
        assert received[user] == expected, (user, received[user] ^ expected)
        # (Mosquitto 2.0 grants every subscription and filters each message by the ACL on delivery.)


def test_a_forged_verdict_never_reaches_the_edge_and_no_line_command_follows(site_broker, tmp_path):
    """The edge's own line-control path on the site broker under edge-line1: verdicts published with the
    edge's, a PLC's or a dashboard's credentials are refused by the broker; the cloud's reach the edge."""
    topics = LineTopics(ROOT, SITE, "line1")
    commands: list[dict] = []
    plc = site_broker.bus("plc-line1")
    plc.subscribe(topics.commands, lambda t, payload: commands.append(json.loads(payload)))
    _connect(plc)
    edge = site_broker.bus("edge-line1")
    ledger = CommandLedger(tmp_path / "commands.db")
    sink = MqttCommandSink(edge, topics, on_published=ledger.mark_published)
    controller = LineController(ledger, sink)
    seen = []
    edge.subscribe(
        topics.verdicts,
        verdict_listener(controller, SITE, "line1", lambda v, outcome: seen.append((v, outcome))),
    )
    _connect(edge)
    now = time.time()
    for item in ("forged-by-edge-line1", "forged-by-plc-line1", "forged-by-dashboard", "real"):
        controller.track(item, "st1", now + 60)
    refused: dict[str, str] = {}
    try:
        for user in ("edge-line1", "plc-line1", "dashboard"):
            forger = _connect(site_broker.bus(user))
            forged = verdict(item_id=f"forged-by-{user}", decision="pass", final=True, line_id="line1")
            forger.publish(
                topics.verdicts, forged.to_json(), on_refused=lambda r, u=user: refused.__setitem__(u, r)
            )
            assert wait_until(lambda u=user: u in refused, timeout=10), user
            forger.stop()
        cloud = _connect(site_broker.bus("seamline-cloud"))
        cloud.publish(
            topics.verdicts, verdict(item_id="real", decision="reject", final=True, line_id="line1").to_json()
        )
        assert wait_until(lambda: len(commands) == 1, timeout=10)
        time.sleep(0.5)
        cloud.stop()
    finally:
        edge.stop()
        plc.stop()
        ledger.close()
    assert set(refused) == {"edge-line1", "plc-line1", "dashboard"}
    assert all("Not authorized" in reason for reason in refused.values())
    assert [v.item_id for v, _ in seen] == ["real"]
    assert [(c["item_id"], c["action"]) for c in commands] == [("real", "reject")]


def test_a_wrong_password_is_refused_with_a_clear_reason(site_broker):
    bus = MqttBus(site_broker.config("edge-line1", password="not-the-password"), persistent_session=False)
    bus.start()
    try:
        assert not bus.wait_connected(3)
        assert wait_until(lambda: bus.last_error is not None, timeout=5)
        assert "refused" in bus.last_error and "authoriz" in bus.last_error.lower(), bus.last_error
    finally:
        bus.stop()


def test_every_role_has_a_row_in_the_contract():
    contract = (REPO / "docs" / "contract.md").read_text()
    for r in ROLES:
        assert f"`{r.user.format(line='<line>')}`" in contract, r.name
    assert role("edge").publishes == ("commands", "edge_availability", "edge_status", "edge_verdicts")
