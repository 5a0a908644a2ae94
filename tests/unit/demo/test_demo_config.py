"""The configuration the demo writes is valid for both sides; its truth function follows the edge's ids."""

import yaml

from cloud.config import CloudConfig
from edge.config import EdgeConfig
from edge.sources.base import ItemIds
from seamline.config.models import load_config, load_section
from seamline.demo.runner import demo_config, synthetic_truth
from seamline.demo.settings import DemoSettings
from seamline.synth import SynthConfig, SyntheticLine


def test_the_generated_config_validates_for_edge_and_cloud(tmp_path):
    settings = DemoSettings(
        garments=5, rate_hz=3.0, views=2, out_dir=tmp_path, auto_threshold=0.93, high_priority_below=0.6
    )
    config = demo_config(
        settings, mqtt_url="mqtt://127.0.0.1:1999", grpc_port=50123, vllm_port=8123, mqtt_protocol="3.1.1"
    )
    path = tmp_path / "seamline.yaml"
    path.write_text(yaml.safe_dump(config))
    loaded = load_config(path)
    edge = load_section(path, loaded, "edge", EdgeConfig)
    cloud = load_section(path, loaded, "cloud", CloudConfig)
    assert edge.source.count == 5 and edge.source.synth.views == 2 and edge.metrics_port is None
    assert (
        cloud.local_vllm.port == 8123
        and cloud.routing.auto_threshold == 0.93
        and cloud.routing.high_priority_below == 0.6
    )
    assert cloud.classifier.prompt.style == "v1-compact" and loaded.grpc.cloud_address == "127.0.0.1:50123"
    assert loaded.mqtt.protocol == "3.1.1"  # the embedded broker's version reaches every process
    # the cloud serves exactly the line the demo's edge agent runs
    assert cloud.served_lines() == {(loaded.site.site_id, loaded.site.line_id)}


def test_truth_follows_the_edge_item_sequence():
    source = {"synth": {"seed": 11}, "start_index": 3}
    truth = synthetic_truth(source)
    ids = ItemIds("line1", "station1")
    line = SyntheticLine(SynthConfig(seed=11))
    for k in range(4):
        assert truth(ids.next()) == line.garment(3 + k).expected_decision.value
    assert truth("no-sequence-here") is None
