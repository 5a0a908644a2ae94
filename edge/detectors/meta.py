"""What a runtime needs to know about a detector besides its weights: input size, normalisation, labels,
version.

For a Hugging Face checkpoint it comes from ``config.json`` and ``preprocessor_config.json``; for an exported
ONNX model or TensorRT engine, from the ``<model>.json`` sidecar the exporter writes next to it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from seamline.errors import InputError


class DetectorLoadError(InputError):
    """A detector model or its metadata is missing or unusable."""


@dataclass(frozen=True)
class DetectorMeta:
    """Detector facts shared by all runtimes."""

    version: str  # name@version, stamped on every crop and verdict
    input_size: int  # square network input side, pixels
    labels: tuple[str, ...]  # class names by id
    image_mean: tuple[float, float, float] | None = None  # None: no normalisation (RT-DETR's default)
    image_std: tuple[float, float, float] | None = None
    tiles: tuple[int, int] = (
        1,
        1,
    )  # (columns, rows) the model was trained to see a frame in (edge.detectors.tiling)
    tile_overlap: float = 0.15
    # an int8 model's record (edge/export/int8.py): how it was quantised, and the accuracy check's numbers
    quantization: dict | None = None

    def check_accepted(self, model_path: Path) -> None:
        """Refuse an int8 model that no accuracy check has accepted (``seamline gate int8``)."""
        if self.quantization is not None and not self.quantization.get("accepted"):
            fp32 = self.quantization.get("fp32", "FP32.onnx")
            raise DetectorLoadError(
                f"{model_path} is an int8 model that no accuracy check has accepted: run `seamline gate int8 "
                f"{fp32} {model_path.name} --data HELD_OUT_COCO_DIR` first"
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def write_sidecar(self, model_path: Path) -> Path:
        """Write ``<model>.json`` next to an exported model."""
        path = sidecar_path(model_path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def read_sidecar(model_path: Path) -> DetectorMeta:
    """The metadata written by ``seamline edge export`` next to ``model_path``."""
    path = sidecar_path(model_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return DetectorMeta(
            version=str(data["version"]),
            input_size=int(data["input_size"]),
            labels=tuple(data["labels"]),
            image_mean=tuple(data["image_mean"]) if data.get("image_mean") else None,
            image_std=tuple(data["image_std"]) if data.get("image_std") else None,
            tiles=_tiles(data.get("tiles")),
            tile_overlap=float(data.get("tile_overlap", 0.15)),
            quantization=dict(data["quantization"]) if data.get("quantization") else None,
        )
    except FileNotFoundError:
        raise DetectorLoadError(f"{path} is missing: export the model with `seamline edge export`") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DetectorLoadError(f"{path}: unreadable detector metadata: {exc}") from exc


def read_hf_checkpoint_meta(checkpoint: Path, version: str | None = None) -> DetectorMeta:
    """Metadata of a local Hugging Face RT-DETR directory."""
    try:
        config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
        processor = json.loads((checkpoint / "preprocessor_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DetectorLoadError(f"{checkpoint}: not an RT-DETR checkpoint directory: {exc}") from exc
    size = processor.get("size") or {}
    height, width = size.get("height"), size.get("width")
    if not height or height != width:
        raise DetectorLoadError(f"{checkpoint}: expected a square processor size, got {size}")
    if (
        processor.get("do_rescale", True) is False
        or abs(processor.get("rescale_factor", 1 / 255) - 1 / 255) > 1e-9
    ):
        raise DetectorLoadError(f"{checkpoint}: only rescale 1/255 is supported")
    if processor.get("do_pad"):
        raise DetectorLoadError(f"{checkpoint}: padding processors are not supported")
    normalize = processor.get("do_normalize", False)
    id2label = config.get("id2label") or {"0": "defect"}
    labels = tuple(id2label[str(i)] if str(i) in id2label else id2label[i] for i in range(len(id2label)))
    card_path = checkpoint / "seamline_model.json"
    card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.exists() else {}
    if version is None:
        version = f"{checkpoint.name}@{card.get('version', 'local')}"
    return DetectorMeta(
        version=version,
        input_size=int(height),
        labels=labels,
        image_mean=tuple(processor["image_mean"]) if normalize else None,
        image_std=tuple(processor["image_std"]) if normalize else None,
        tiles=_tiles(card.get("tiles")),
        tile_overlap=float(card.get("tile_overlap", 0.15)),
    )


def _tiles(value: object) -> tuple[int, int]:
    if value is None:
        return (1, 1)
    cols, rows = (int(v) for v in value)  # type: ignore[union-attr]
    if not (1 <= cols <= 8 and 1 <= rows <= 8):
        raise DetectorLoadError(f"tiles {value!r}: columns and rows must be 1-8")
    return cols, rows
