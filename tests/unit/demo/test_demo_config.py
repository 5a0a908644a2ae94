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


def test_a_second_run_of_the_edge_maps_to_the_garments_after_the_first():
    """--learn's second run starts at start_index N, with a new boot; the first run's ids keep theirs."""
    from seamline.demo.runner import GarmentIndex

    index = GarmentIndex()
    first = ItemIds("line1", "station1")
    run1 = [first.next() for _ in range(3)]
    assert [index(i) for i in run1] == [0, 1, 2]
    index.next_run(run1, start=10)
    second = ItemIds("line1", "station1")
    while second.boot == first.boot:  # two boots of the edge have two tags
        second = ItemIds("line1", "station1")
    run2 = [second.next() for _ in range(2)]
    assert [index(i) for i in run2] == [10, 11]
    assert [index(i) for i in run1] == [0, 1, 2] and index("no-sequence") is None
    truth = synthetic_truth({"synth": {"seed": 11}}, index)
    line = SyntheticLine(SynthConfig(seed=11))
    assert truth(run2[1]) == line.garment(11).expected_decision.value


def test_the_learning_demo_config_validates_and_sets_the_loop_up(tmp_path):
    settings = DemoSettings(garments=40, out_dir=tmp_path, learn=True, learn_steps=50)
    config = demo_config(settings, mqtt_url="mqtt://127.0.0.1:1999", grpc_port=50123, vllm_port=8123)
    path = tmp_path / "seamline.yaml"
    path.write_text(yaml.safe_dump(config))
    cloud = load_section(path, load_config(path), "cloud", CloudConfig)
    assert cloud.classifier.model_version == "classifier@1" and cloud.audit.auto_share == 1.0
    learning = cloud.learning
    assert learning.train.models == ["classifier"] and learning.train.classifier["steps"] == 50
    assert learning.triggers.min_new_verified == 10 and learning.promotion.min_audit_samples == 5
    assert not learning.promotion.auto_promote  # the demo acts on the report through the CLI, as a person
    plain = demo_config(DemoSettings(out_dir=tmp_path), mqtt_url="mqtt://x:1", grpc_port=1, vllm_port=2)
    assert "learning" not in plain["cloud"] and "audit" not in plain["cloud"]
