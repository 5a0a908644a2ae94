"""The edge forgets what is settled after ``edge.spool.retention_h``: acknowledged or expired line commands
in the ledger, poison garments set aside in the spool; never a garment still waiting or unacknowledged."""

import time

import pytest
import yaml

from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from seamline.config.models import load_config, load_section
from seamline.domain import LineAction
from tests.integration.edge.agent_harness import write_config

pytestmark = pytest.mark.integration


def test_the_agent_prunes_settled_commands_and_set_aside_garments(tmp_path, mqtt_broker, tiny_onnx_detector):
    path = write_config(
        tmp_path / "seamline.yaml",
        broker_url=mqtt_broker.url,
        cloud_address="127.0.0.1:9",
        detector=tiny_onnx_detector,
        source={"type": "synthetic", "rate_hz": 1, "count": 1},
        threshold=0.5,
        topic_root="seamline-retention",
    )
    data = yaml.safe_load(path.read_text())
    data["edge"]["spool"] = {"retention_h": 1.0}
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    agent = EdgeAgent(config, load_section(path, config, "edge", EdgeConfig))
    ledger, spool = agent.ledger, agent.spool
    try:
        hours_ago = time.time() - 2 * 3600
        for item in ("published", "expired", "unpublished", "recent"):
            ledger.register(item, "st1", hours_ago + 5)
        ledger.register("waiting", "st1", hours_ago + 5)
        commands = {
            item: ledger.decide(item, LineAction.PASS, "verdict", f"v-{item}", now=hours_ago)
            for item in ("published", "expired", "unpublished")
        }
        ledger.mark_published(commands["published"].command_id)
        ledger.mark_expired(commands["expired"].command_id)
        recent = ledger.decide("recent", LineAction.PASS, "verdict", "v-recent")
        ledger.mark_published(recent.command_id)
        for item in ("poison", "queued"):
            spool.put(item, b"payload")
        spool.set_aside("poison", "UNAVAILABLE: for ever")
        spool._db.execute("UPDATE garments SET set_aside_at = ? WHERE item_id = 'poison'", (hours_ago,))

        assert agent.prune() == (2, 1)
        assert {
            i for i in ("published", "expired", "unpublished", "recent", "waiting") if ledger.is_registered(i)
        } == {
            "unpublished",
            "recent",
            "waiting",
        }
        assert spool.set_aside_items() == [] and len(spool) == 1
    finally:
        spool.close()
        ledger.close()
