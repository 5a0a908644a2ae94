"""deploy/grafana/seamline-overview.json queries only metrics that Seamline really exposes: every name in its
PromQL is found in a live scrape of an edge agent's, a cloud service's and a review console's /metrics."""

import json
import re
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from cloud.metrics import CloudMetrics
from edge.metrics import EdgeMetrics
from harness.review import ConsoleThread, write_config

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "seamline-overview.json"
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _exposed(url: str) -> set[str]:
    """Every metric family a scrape announces, with the sample names Prometheus derives from it."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        families = list(text_string_to_metric_families(reply.read().decode()))
    names = set()
    for family in families:
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES)
    return names


def test_every_dashboard_query_names_a_metric_a_live_scrape_exposes(tmp_path, mqtt_broker):
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bseamline_[a-z_]+", target["expr"])
    }
    assert {
        "seamline_edge_garments_total",
        "seamline_cloud_verdicts_total",
        "seamline_review_queue_depth",
    } <= queried

    cloud, edge = CloudMetrics(), EdgeMetrics()
    console = ConsoleThread(
        write_config(tmp_path / "seamline.yaml", mqtt_url=mqtt_broker.url, data_dir=tmp_path / "data")
    ).start()
    try:
        exposed = _exposed(f"http://127.0.0.1:{cloud.serve('127.0.0.1:0')}/metrics")
        exposed |= _exposed(f"http://127.0.0.1:{edge.serve('127.0.0.1', 0)}/metrics")
        exposed |= _exposed(f"{console.url}/metrics")
    finally:
        console.stop()
        cloud.close()
    assert queried - exposed == set()
