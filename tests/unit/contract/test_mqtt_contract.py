"""Topic layout and payload schemas (the MQTT half of the contract)."""

import json
from datetime import UTC, datetime

import pytest

from seamline.contract import messages as m
from seamline.contract.mqtt import (
    LineTopics,
    PayloadError,
    cloud_availability_topic,
    every_line_topic,
    schema,
    topic_level_of,
    topic_specs,
    validate_payload,
)


def _verdict(**overrides) -> m.Verdict:
    now = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
    fields = dict(
        item_id="line1-0-000001",
        site_id="site1",
        line_id="line1",
        station_id="st1",
        source="cloud",
        final=False,
        decision="review",
        route="human",
        priority="high",
        confidence=0.62,
        defects=(
            m.DefectVerdict(
                crop_id="v0-c0",
                view_index=0,
                type="stain",
                severity="moderate",
                decision="review",
                reason="A brown 2 cm mark on the front panel.",
                box=(10.0, 20.0, 60.0, 70.0),
                scores={"detector": 0.61, "classifier": 0.7},
            ),
        ),
        models=m.ModelVersions(
            detector="rtdetr@1", classifier="qwen2.5-vl-7b@1", prompt="v3@en", policy="p1"
        ),
        timings_ms={"detect": 12.0, "classify": 410.0, "total": 480.0},
        timestamps=m.VerdictTimestamps(captured_at=now, decided_at=now, deadline_at=now),
    )
    fields.update(overrides)
    return m.Verdict(**fields)


def test_line_topics_follow_the_layout():
    t = LineTopics("seamline", "site1", "line-3")
    assert t.verdicts == "seamline/site1/line-3/verdicts"
    assert t.commands == "seamline/site1/line-3/commands"
    assert t.reviews == "seamline/site1/line-3/reviews"
    assert t.edge_availability == "seamline/site1/line-3/edge/availability"
    assert (
        cloud_availability_topic("seamline", "classifier", "cloud-0-50051")
        == "seamline/_cloud/classifier/cloud-0-50051/availability"
    )
    assert cloud_availability_topic("seamline", "review", "+") == "seamline/_cloud/review/+/availability"
    with pytest.raises(ValueError, match="instance"):
        cloud_availability_topic("seamline", "classifier", "a/b")
    assert topic_level_of("Cloud-A.example:50051") == "cloud-a-example-50051"
    assert every_line_topic("seamline", "reviews") == "seamline/+/+/reviews"


@pytest.mark.parametrize("root", ["", "seamline/", "a/+", "#"])
def test_bad_topic_roots_are_refused(root):
    with pytest.raises(ValueError):
        LineTopics(root, "site1", "line1")
    with pytest.raises(ValueError):
        every_line_topic(root, "reviews")


@pytest.mark.parametrize("site", ["", "Site1", "a/b", "a+b", "#", "_cloud", "x" * 65])
def test_bad_site_ids_are_refused(site):
    with pytest.raises(ValueError):
        LineTopics("seamline", site, "line1")


def test_events_are_qos1_not_retained_and_availability_is_retained():
    specs = topic_specs()
    for name in ("verdicts", "commands", "reviews"):
        assert specs[name].qos == 1 and not specs[name].retain
    for name in ("edge_availability", "cloud_availability"):
        assert specs[name].retain


def test_every_topic_names_an_existing_schema():
    for spec in topic_specs().values():
        assert schema(spec.payload_schema)["$schema"].endswith("2020-12/schema")


def test_payload_models_produce_schema_valid_json():
    validate_payload("verdicts", json.loads(_verdict().to_json()))
    command = m.LineCommand(
        item_id="line1-0-000001",
        site_id="site1",
        line_id="line1",
        station_id="st1",
        action="divert_review",
        cause="deadline_missed",
    )
    validate_payload("commands", json.loads(command.to_json()))
    event = m.ReviewEvent(
        type="new",
        review_id="r1",
        item_id="line1-0-000001",
        site_id="site1",
        line_id="line1",
        status="queued",
        priority="high",
    )
    validate_payload("reviews", json.loads(event.to_json()))
    validate_payload("edge_availability", "online")


def test_edge_pass_verdict_with_no_defects_is_valid():
    verdict = _verdict(
        source="edge", final=True, decision="pass", route="auto", priority="none", confidence=1.0, defects=()
    )
    validate_payload("verdicts", json.loads(verdict.to_json()))


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda d: d.update(decision="maybe"), "decision"),
        (lambda d: d.update(confidence=1.5), "confidence"),
        (lambda d: d.pop("item_id"), "(payload)"),
        (lambda d: d.update(extra_field=1), "(payload)"),
        (lambda d: d["defects"][0].update(severity="catastrophic"), "defects/0/severity"),
        (lambda d: d["defects"][0].update(box=[1, 2, 3]), "defects/0/box"),
        (lambda d: d["defects"][0].update(type="Coffee Stain"), "defects/0/type"),
        (lambda d: d.update(schema_version="2.0"), "schema_version"),
        (lambda d: d.update(site_id="Site 1"), "site_id"),
    ],
)
def test_schema_rejects_broken_verdicts_naming_the_field(mutate, where):
    data = json.loads(_verdict().to_json())
    mutate(data)
    with pytest.raises(PayloadError) as err:
        validate_payload("verdicts", data)
    assert where in str(err.value)


def test_availability_is_online_or_offline():
    with pytest.raises(PayloadError):
        validate_payload("cloud_availability", "maybe")
