"""The golden set, the MLflow registry and the gate, through the commands a user runs, on a verified store
made from the synthetic line and real models: the shipped demo classifier, a copy of it, and a damaged
copy."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from cloud.learning.registry import ModelRegistry, RegistryConfig
from cloud.review.export import export_verified
from cloud.storage.audit import AuditStore
from cloud.storage.crop_store import crop_store_from_url
from cloud.storage.tables import golden_items
from harness.learning import render_line, verified_from_line
from seamline.config.taxonomy import default_taxonomy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
DEMO_CLASSIFIER = REPO / "models" / "demo" / "classifier"
TYPES = {"pilling"}


def seamline(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "seamline", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def write_learning_config(
    path: Path, data_dir: Path, *, learning: dict | None = None, mqtt_url: str = "mqtt://127.0.0.1:1"
) -> Path:
    base = {
        "golden": {"share": 0.5, "min_per_stratum": 20},
        "gate": {
            # The demo models are far below production floors; these tests are about the comparison.
            "floors": {
                "detector_map50": 0.0,
                "detector_recall": 0.0,
                "classifier_type_accuracy": 0.0,
                "classifier_severity_agreement": 0.0,
            },
            "recent_weeks": 0,
            "bootstrap_resamples": 500,
            "classifier_latency_ms": 60000,
            "detector_latency_ms": 60000,
        },
    }
    for key, value in (learning or {}).items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(
        yaml.safe_dump(
            {
                "site": {"site_id": "site1", "line_id": "line1", "station_id": "st1"},
                "mqtt": {"url": mqtt_url},
                "storage": {"data_dir": str(data_dir)},
                "cloud": {"learning": base},
            }
        )
    )
    return path


def stores(data_dir: Path):
    store = AuditStore.from_url(f"sqlite:///{data_dir / 'cloud' / 'audit.db'}")
    return store, crop_store_from_url("crops", base=data_dir / "cloud")


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    """A verified store: ~70 pilling crops (three severities) and 60 normal ones of the synthetic line."""
    root = tmp_path_factory.mktemp("learn-store")
    line = render_line(root / "synth", 700, seed=11)
    data_dir = root / "data"
    store, crops = stores(data_dir)
    made = verified_from_line(store, crops, line, types=TYPES, max_normals=60)
    counts = {t: sum(1 for _, x in made if x == t) for t in (*TYPES, "normal")}
    assert counts["pilling"] >= 60, counts
    config = write_learning_config(root / "seamline.yaml", data_dir)
    return config, data_dir, counts


def test_golden_freeze_holds_out_a_stratified_set_that_exports_and_training_leave_alone(verified, tmp_path):
    config, data_dir, counts = verified
    frozen = seamline("golden", "freeze", "--config", str(config))
    assert frozen.returncode == 0, frozen.stderr
    golden = json.loads(frozen.stdout)
    assert golden["strata"]["normal"] == min(round(0.5 * counts["normal"]), counts["normal"] // 2)
    assert sum(golden["strata"].values()) == golden["garments"]
    assert (Path(golden["path"]) / "jsonl" / "crops.jsonl").exists()

    store, crops = stores(data_dir)
    with store.engine.connect() as conn:
        held = {r[0] for r in conn.execute(sa.select(golden_items.c.item_id))}
    assert len(held) == golden["garments"]
    export = export_verified(store.engine, crops, default_taxonomy(), tmp_path / "export", "jsonl")
    lines = (tmp_path / "export" / "crops.jsonl").read_text().splitlines()
    assert export.labels == len(lines) == sum(counts.values()) - golden["garments"]
    assert not {json.loads(x)["image"].split("/")[-1].split("__")[0] for x in lines} & held

    shown = seamline("golden", "show", "--config", str(config))
    assert shown.returncode == 0 and json.loads(shown.stdout)["sha256"] == golden["sha256"]
    refused = seamline(
        "train", "classifier", golden["path"] + "/jsonl/crops.jsonl", "-o", str(tmp_path / "t")
    )
    assert refused.returncode == 2 and f"golden set {golden['sha256'][:12]}" in refused.stderr


def _damaged_copy(src: Path, dst: Path) -> Path:
    """The demo classifier with noise on every weight: a real model, clearly worse."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    weights = load_file(dst / "model.safetensors")
    generator = torch.Generator().manual_seed(0)
    noisy = {
        k: (
            v.float() + 0.5 * v.float().std().nan_to_num(0.02) * torch.randn(v.shape, generator=generator)
        ).to(v.dtype)
        if v.is_floating_point() and v.numel() > 1
        else v
        for k, v in weights.items()
    }
    save_file(noisy, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def test_registry_and_gate_pass_an_identical_candidate_and_fail_a_worse_one_naming_the_class(
    verified, tmp_path
):
    config, data_dir, _ = verified
    if seamline("golden", "show", "--config", str(config)).returncode != 0:
        assert seamline("golden", "freeze", "--config", str(config)).returncode == 0

    first = seamline(
        "models",
        "register",
        "classifier",
        str(DEMO_CLASSIFIER),
        "--config",
        str(config),
        "--data-sha256",
        "a" * 64,
        "--alias",
        "champion",
    )
    assert first.returncode == 0, first.stderr
    champion = json.loads(first.stdout)
    assert champion["aliases"] == ["champion"] and champion["tags"]["data_sha256"] == "a" * 64
    assert champion["metrics"]["type_accuracy"] == pytest.approx(0.63)

    same = seamline(
        "models",
        "register",
        "classifier",
        str(DEMO_CLASSIFIER),
        "--config",
        str(config),
        "--data-sha256",
        "b" * 64,
    )
    candidate = json.loads(same.stdout)["version"]
    unpromotable = seamline("models", "promote", "classifier", candidate, "--config", str(config))
    assert unpromotable.returncode == 2 and "has not passed the gate" in unpromotable.stderr

    passed = seamline(
        "gate",
        "classifier",
        "--config",
        str(config),
        "--candidate",
        candidate,
        "--out",
        str(tmp_path / "gate-same"),
    )
    assert passed.returncode == 0, passed.stderr + passed.stdout[-3000:]
    result = json.loads(passed.stdout)
    names = {c["name"] for c in result["criteria"]}
    assert {"floors", "latency", "per_class", "mcnemar", "routing"} <= names
    compared = [c for c in result["classes"] if c["compared"]]
    assert compared and all(c["diff"] == 0 for c in compared)
    assert {"report.json", "report.md", "per_class.png"} <= {
        p.name for p in (tmp_path / "gate-same").iterdir()
    }

    registry = ModelRegistry(RegistryConfig(), data_dir)
    judged = registry.version("classifier", candidate)
    assert judged.tags["gate.result"] == "pass" and "candidate" in judged.aliases

    damaged = _damaged_copy(DEMO_CLASSIFIER, tmp_path / "damaged")
    worse = seamline(
        "models", "register", "classifier", str(damaged), "--config", str(config), "--data-sha256", "c" * 64
    )
    worse_version = json.loads(worse.stdout)["version"]
    failed = seamline(
        "gate",
        "classifier",
        "--config",
        str(config),
        "--candidate",
        worse_version,
        "--out",
        str(tmp_path / "gate-worse"),
    )
    assert failed.returncode == 1, failed.stderr
    failing = json.loads(failed.stdout)["failing"]
    big = [c["label"] for c in compared]
    assert any(f"per_class[golden:{label}]" in failing for label in big), failing
    assert any("FAIL per_class[golden:" in line for line in failed.stderr.splitlines())
    assert registry.version("classifier", worse_version).tags["gate.result"] == "fail"
    assert registry.alias_version("classifier", "candidate") == candidate  # a failed gate moves nothing

    promoted = seamline("models", "promote", "classifier", "candidate", "--config", str(config))
    assert promoted.returncode == 0, promoted.stderr
    assert json.loads(promoted.stdout) == {
        "model": "classifier",
        "champion": candidate,
        "previous": champion["version"],
    }
    shown = seamline("models", "show", "classifier", "champion", "--config", str(config))
    assert shown.returncode == 0 and json.loads(shown.stdout)["version"] == candidate
    assert "Qwen2.5-VL" in shown.stderr  # the model card
    listed = json.loads(seamline("models", "list", "classifier", "--config", str(config)).stdout)
    by_version = {row["version"]: row for row in listed}
    assert by_version[candidate]["aliases"] == ["champion"]
    assert by_version[champion["version"]]["tags"]["replaced_by"] == candidate


def test_the_detector_gate_also_judges_on_recent_labels_the_candidate_did_not_train_on(verified, tmp_path):
    config, data_dir, _ = verified
    if seamline("golden", "show", "--config", str(config)).returncode != 0:
        assert seamline("golden", "freeze", "--config", str(config)).returncode == 0
    recent = config.with_name("recent.yaml")
    raw = yaml.safe_load(config.read_text())
    raw["cloud"]["learning"]["gate"]["recent_weeks"] = 4
    recent.write_text(yaml.safe_dump(raw))
    demo = REPO / "models" / "demo" / "detector"  # an exported detector: registered as it is
    register = [
        "models",
        "register",
        "detector",
        str(demo),
        "--config",
        str(recent),
        "--data-sha256",
        "e" * 64,
    ]
    champion = json.loads(seamline(*register, "--alias", "champion").stdout)["version"]
    unseen = json.loads(seamline(*register).stdout)["version"]
    seen = json.loads(seamline(*register, "--data-until", "2999-01-01T00:00:00+00:00").stdout)["version"]
    assert champion != unseen != seen

    judged = seamline("gate", "detector", "--config", str(recent), "--candidate", unseen)
    assert judged.returncode == 0, judged.stderr[-3000:]
    result = json.loads(judged.stdout)
    assert result["champion"] == champion
    assert "crops verified since" in result["summary"]["recent"]["detail"]
    assert {c["set"] for c in result["criteria"] if c["name"] == "per_class"} == {"golden", "recent"}
    for name in ("golden", "recent"):
        assert result["summary"][name]["candidate"]["recall"] == result["summary"][name]["champion"]["recall"]
    assert "ONNX Runtime" in next(c["detail"] for c in result["criteria"] if c["name"] == "latency")

    trained_on_all = json.loads(
        seamline("gate", "detector", "--config", str(recent), "--candidate", seen).stdout
    )
    assert "recent" not in trained_on_all["summary"]  # every verified label is older than its data

    bad = seamline("gate", "detector", "--config", str(recent), "--candidate", "99")
    assert bad.returncode == 2 and "detector: no version '99'" in bad.stderr


def test_a_detector_candidate_with_an_int8_model_is_gated_on_it_too(verified, tmp_path):
    """The learning gate runs `seamline gate int8`'s comparison for a candidate with an int8 model."""
    import numpy as np
    from PIL import Image

    from edge.export.int8 import quantize_int8
    from seamline.synth import SynthConfig, SyntheticLine

    config, _, _ = verified
    if seamline("golden", "show", "--config", str(config)).returncode != 0:
        assert seamline("golden", "freeze", "--config", str(config)).returncode == 0
    folder = tmp_path / "with-int8"
    shutil.copytree(REPO / "models" / "demo" / "detector", folder)
    frames = tmp_path / "frames"
    frames.mkdir()
    line = SyntheticLine(SynthConfig(seed=100))
    for i in range(4):
        Image.fromarray(np.asarray(line.garment(i).views[0].image)).save(frames / f"{i}.jpg")
    quantize_int8(folder / "detector.onnx", frames)
    register = [
        "models",
        "register",
        "detector",
        str(folder),
        "--config",
        str(config),
        "--data-sha256",
        "f" * 64,
    ]
    version = json.loads(seamline(*register).stdout)["version"]
    judged = seamline("gate", "detector", "--config", str(config), "--candidate", version)
    result = json.loads(judged.stdout)
    checks = [c for c in result["criteria"] if c["name"] == "int8"]
    assert {c["set"] for c in checks} == {"golden"}, result["criteria"]
    summary = result["summary"]["golden"]
    drops = [summary["candidate"][k] - summary["int8"][k] for k in ("map50", "recall")]
    assert checks[0]["passed"] == (max(drops) <= 0.01 + 1e-4), (checks, summary)
    assert judged.returncode == (0 if result["passed"] else 1)
