"""`seamline synth` end to end: files on disk, COCO in both readers, truth.jsonl, and boxes on the pixels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from seamline.synth import SynthConfig, SyntheticLine, write_dataset
from seamline.synth.cli import synth

pytestmark = pytest.mark.integration

GARMENTS = 200
MCU = 16  # JPEG's 4:2:0 blocks: a change stays inside the 16 px blocks it touches


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Seamline (test harness)."""

    app.command("synth")(synth)
    return app


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("synth") / "line"
    result = CliRunner().invoke(
        _app(), ["synth", "--garments", str(GARMENTS), "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def _truth(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]


def test_cli_writes_the_files_and_prints_a_summary(dataset):
    out, output = dataset
    assert (out / "annotations.json").is_file() and (out / "truth.jsonl").is_file()
    assert len(list((out / "images").glob("*.jpg"))) == GARMENTS
    assert f"{GARMENTS} garments" in output and "garments/s" in output
    assert "fraying" in output  # the per-type table


def test_coco_loads_in_pycocotools_and_faster_coco_eval(dataset):
    from faster_coco_eval import COCO as FasterCOCO
    from pycocotools.coco import COCO

    out, _ = dataset
    truth = _truth(out)
    n_images = sum(len(r["views"]) for r in truth)
    n_boxes = sum(len(r["defects"]) for r in truth)
    for reader in (COCO, FasterCOCO):
        coco = reader(str(out / "annotations.json"))
        assert len(coco.getImgIds()) == n_images == GARMENTS
        assert len(coco.getAnnIds()) == n_boxes > 0
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(SyntheticLine().taxonomy.type_ids)
    coco = COCO(str(out / "annotations.json"))
    by_file = {img["file_name"]: img for img in coco.loadImgs(coco.getImgIds())}
    for rec in truth:
        for view in rec["views"]:
            img = by_file[view["file_name"]]
            assert (out / img["file_name"]).is_file()
            assert img["item_id"] == rec["item_id"] and img["view_index"] == view["view_index"]
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
            want = sorted(
                (d["type"], d["severity"]) for d in rec["defects"] if d["view_index"] == view["view_index"]
            )
            got = sorted((a["attributes"]["type"], a["attributes"]["severity"]) for a in anns)
            assert got == want
            for a in anns:
                assert a["iscrowd"] == 0 and a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3], abs=0.05)
                assert coco.loadCats(a["category_id"])[0]["name"] == a["attributes"]["type"]


def test_truth_lines_match_the_line(dataset):
    out, _ = dataset
    truth = _truth(out)
    assert [r["index"] for r in truth] == list(range(GARMENTS))
    line = SyntheticLine(SynthConfig())
    for rec in truth[:5]:
        g = line.garment(rec["index"])
        assert rec["item_id"] == g.item_id and rec["garment_kind"] == g.garment_kind
        assert rec["expected_decision"] == g.expected_decision.value
        assert len(rec["defects"]) == len(g.defects)
    assert {r["expected_decision"] for r in truth} == {"pass", "reject"}


def test_boxes_lie_on_rendered_defects(dataset):
    out, _ = dataset
    line = SyntheticLine(SynthConfig())
    params = [cv2.IMWRITE_JPEG_QUALITY, 92]
    checked = 0
    for rec in _truth(out):
        if not rec["defects"] or checked >= 40:
            continue
        on_disk = cv2.imread(str(out / rec["views"][0]["file_name"]))
        clean = line.garment(rec["index"], with_defects=False).views[0].image
        _, buf = cv2.imencode(".jpg", cv2.cvtColor(clean, cv2.COLOR_RGB2BGR), params)
        bare = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        diff = np.abs(on_disk.astype(np.int16) - bare.astype(np.int16)).max(axis=2)
        covered = np.zeros(diff.shape, bool)
        for d in rec["defects"]:
            x0, y0, x1, y1 = (
                int(d["box"][0]),
                int(d["box"][1]),
                math.ceil(d["box"][2]),
                math.ceil(d["box"][3]),
            )
            assert diff[y0:y1, x0:x1].max() >= 10, d
            gx0, gy0 = (x0 // MCU) * MCU, (y0 // MCU) * MCU
            gx1, gy1 = -(-x1 // MCU) * MCU, -(-y1 // MCU) * MCU
            covered[max(0, gy0 - MCU) : gy1 + MCU, max(0, gx0 - MCU) : gx1 + MCU] = True
            checked += 1
        assert diff[~covered].max() == 0, rec["item_id"]
    assert checked >= 20


def test_workers_give_the_same_files(tmp_path):
    line = SyntheticLine(SynthConfig(seed=5, views=2, width=640, height=360))
    solo = write_dataset(line, 10, tmp_path / "solo", workers=0, progress=False)
    pool = write_dataset(line, 10, tmp_path / "pool", workers=2, progress=False)
    assert solo.annotations == pool.annotations and solo.images == pool.images == 20
    for name in ("annotations.json", "truth.jsonl"):
        assert (tmp_path / "solo" / name).read_bytes() == (tmp_path / "pool" / name).read_bytes()
    for path in sorted((tmp_path / "solo" / "images").iterdir()):
        assert path.read_bytes() == (tmp_path / "pool" / "images" / path.name).read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--garments", "0"], "--garments"),
        (["--views", "6"], "views"),
        (["--image-format", "gif"], "--image-format"),
        (["--width", "300", "--height", "600"], "width"),
        (["--quality", "0"], "--quality"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_line(tmp_path, args, message):
    result = CliRunner().invoke(_app(), ["synth", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
