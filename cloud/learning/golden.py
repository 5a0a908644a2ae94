"""The golden set: a frozen, stratified sample of verified garments that no training ever uses.

`seamline golden freeze` draws, per stratum (a garment's defect type x severity; the most severe of its
labels, or "normal"), a share of the verified garments that are in no golden set yet — at least
``min_per_stratum`` where the stratum has them, never more than half of it, at most ``max_per_stratum`` —
by a hash of the garment id, so a rerun on the same store picks the same garments. It writes them as the
exports the evaluations read (``coco/`` for the detector, ``jsonl/`` for the classifier), hashes those
files (``folder_sha256``), records the set and its garments in the audit store, and writes ``golden.json``.

From then on the verified-store export leaves those garments out (cloud/review/export.py), and the training
commands refuse a data folder that is a golden set or that holds one of its garments (``refuse_golden``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cloud.learning.coco_data import DatasetError
from seamline.sampling import draw

GOLDEN_FILE = "golden.json"
_SEVERITY_RANK = {"severe": 3, "moderate": 2, "minor": 1, "none": 0}


@dataclass
class GoldenSet:
    sha256: str
    path: str
    garments: int
    labels: int
    strata: dict[str, int]
    created_at: str
    created_by: str

    @property
    def coco(self) -> Path:
        return Path(self.path) / "coco"

    @property
    def jsonl(self) -> Path:
        return Path(self.path) / "jsonl" / "crops.jsonl"


def folder_sha256(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes, in sorted order (``golden.json`` left out)."""
    digest = hashlib.sha256()
    folder = Path(folder)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != GOLDEN_FILE):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def stratum_of(labels: list[dict[str, Any]], normal: str) -> str:
    """A garment's stratum: its most severe defect label as ``type/severity``, else ``normal``."""
    defects = [lab for lab in labels if lab["type"] != normal]
    if not defects:
        return normal
    worst = max(defects, key=lambda lab: (_SEVERITY_RANK.get(lab["severity"], 0), lab["type"]))
    return f"{worst['type']}/{worst['severity']}"


def choose(by_stratum: dict[str, list[str]], share: float, least: int, most: int) -> dict[str, list[str]]:
    """Per stratum, the garments frozen: lowest hash draws first, as many as the rules above allow."""
    chosen = {}
    for stratum, items in sorted(by_stratum.items()):
        ranked = sorted(items, key=lambda item: draw(item, "golden"))
        count = min(max(round(share * len(items)), least), len(items) // 2, most)
        if count:
            chosen[stratum] = ranked[:count]
    return chosen


def item_id_of(file_name: str) -> str:
    """The garment id in an exported crop's file name (``images/<item_id>__<crop_id>.jpg``)."""
    return Path(file_name).name.split("__", 1)[0]


def read_golden(folder: Path) -> GoldenSet:
    data = json.loads((Path(folder) / GOLDEN_FILE).read_text(encoding="utf-8"))
    return GoldenSet(**{k: data[k] for k in GoldenSet.__dataclass_fields__})


def golden_items_in(folder: Path) -> set[str]:
    return set(json.loads((Path(folder) / GOLDEN_FILE).read_text(encoding="utf-8"))["items"])


def refuse_golden(data: Path, golden: Path | None) -> None:
    """Raise DatasetError if ``data`` is a golden set, or (with ``golden``) holds one of its garments."""
    data = Path(data)
    folder = data if data.is_dir() else data.parent
    for parent in (folder, *folder.parents):
        if (parent / GOLDEN_FILE).is_file():
            sha = read_golden(parent).sha256
            raise DatasetError(f"{data} is golden set {sha[:12]}: no training may use it")
    if golden is None:
        return
    frozen = golden_items_in(golden)
    files = [p.name for p in folder.rglob("*") if p.is_file() and "__" in p.name]
    overlap = sorted({item_id_of(name) for name in files} & frozen)
    if overlap:
        raise DatasetError(
            f"{data} holds {len(overlap)} garment(s) of golden set {read_golden(golden).sha256[:12]} "
            f"(e.g. {overlap[0]}): no training may use them; export again (exports leave golden garments out)"
        )


def freeze(
    store: Any, crop_store: Any, taxonomy: Any, cfg: Any, out_root: Path, *, created_by: str
) -> GoldenSet:
    """Freeze a golden set from ``store`` (an AuditStore) into ``out_root/<sha12>/``; see the module doc."""
    import sqlalchemy as sa

    from cloud.review.export import export_verified
    from cloud.storage.tables import golden_items, golden_sets, verified_labels
    from seamline.clock import utcnow

    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(verified_labels.c.item_id, verified_labels.c.type, verified_labels.c.severity)
            .where(verified_labels.c.item_id.not_in(sa.select(golden_items.c.item_id)))
            .where(verified_labels.c.crop_id.is_not(None))
        ).mappings()
        per_garment: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            per_garment[row["item_id"]].append(dict(row))
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for item_id, labels in per_garment.items():
        by_stratum[stratum_of(labels, taxonomy.normal.id)].append(item_id)
    chosen = choose(by_stratum, cfg.share, cfg.min_per_stratum, cfg.max_per_stratum)
    items = {item for members in chosen.values() for item in members}
    if not items:
        raise DatasetError(
            f"no golden set: {len(per_garment)} verified garment(s) with crops outside earlier golden sets, "
            "too few to hold any out (each stratum keeps at least half for training)"
        )
    out_root = Path(out_root)
    staging = out_root / f".staging-{utcnow().strftime('%Y%m%dT%H%M%S%f')}"
    summaries = {}
    for fmt, sub in (("coco", "coco"), ("jsonl", "jsonl")):
        summaries[fmt] = export_verified(store.engine, crop_store, taxonomy, staging / sub, fmt, items=items)
    sha = folder_sha256(staging)
    final = out_root / sha[:12]
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    created = utcnow()
    result = GoldenSet(
        sha256=sha,
        path=str(final.resolve()),
        garments=len(items),
        labels=summaries["coco"].labels,
        strata={stratum: len(members) for stratum, members in chosen.items()},
        created_at=created.isoformat(),
        created_by=created_by,
    )
    (final / GOLDEN_FILE).write_text(
        json.dumps({**asdict(result), "items": sorted(items)}, indent=2) + "\n", encoding="utf-8"
    )
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(golden_sets).values(
                sha256=sha,
                created_at=created,
                created_by=created_by,
                path=result.path,
                garments=result.garments,
                labels=result.labels,
                strata=result.strata,
            )
        )
        conn.execute(sa.insert(golden_items), [{"sha256": sha, "item_id": item} for item in sorted(items)])
    return result


def latest_golden(store: Any) -> GoldenSet | None:
    """The newest golden set recorded in the audit store (None: none was frozen)."""
    import sqlalchemy as sa

    from cloud.storage.tables import golden_sets

    with store.engine.connect() as conn:
        row = (
            conn.execute(sa.select(golden_sets).order_by(golden_sets.c.created_at.desc()).limit(1))
            .mappings()
            .first()
        )
    if row is None:
        return None
    folder = Path(row["path"])
    if not (folder / GOLDEN_FILE).is_file():
        raise DatasetError(f"golden set {row['sha256'][:12]}: its files are gone from {folder}")
    found = read_golden(folder)
    if folder_sha256(folder) != found.sha256:
        raise DatasetError(f"golden set {found.sha256[:12]} at {folder}: files changed since it was frozen")
    return found
