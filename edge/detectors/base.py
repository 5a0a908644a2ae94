"""The detector interface every runtime implements.

Pre-process (numpy) -> forward (runtime) -> post-process (numpy).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from edge.detectors.meta import DetectorMeta
from edge.detectors.processing import decode_detections, preprocess
from edge.detectors.tiling import suppress_duplicates, tile_windows

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detections:
    """Candidate defect regions found in one image."""

    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2 in source-image pixels
    scores: np.ndarray  # (N,) float32 in [0, 1], descending
    labels: np.ndarray  # (N,) int64, index into the detector's label names
    top_score: float = 0.0  # best candidate score before thresholding (how close a "nothing found" came)

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True)
class RawOutputs:
    """What the network returns for a batch, before decoding."""

    logits: np.ndarray  # (B, Q, C) float32, pre-sigmoid class scores per query
    boxes: np.ndarray  # (B, Q, 4) float32, cx cy w h relative to the input


class DetectorRuntime(ABC):
    """A loaded detector on one runtime. Subclasses implement ``forward`` only.

    Args:
        meta: input size, normalisation, labels and version of the model.
        score_threshold: keep regions scoring at least this (the seed: 0.25, recall first).
        top_k: most regions per image before thresholding.
        class_agnostic: one "defect" class per query (max over classes) instead of per-class candidates.
    """

    key: str = ""

    def __init__(
        self,
        meta: DetectorMeta,
        *,
        score_threshold: float = 0.25,
        top_k: int = 100,
        class_agnostic: bool = True,
        tiles: tuple[int, int] | None = None,
    ):
        self.meta = meta
        self.score_threshold = score_threshold
        self.top_k = top_k
        self.class_agnostic = class_agnostic
        self.tiles = tuple(tiles) if tiles else meta.tiles  # (columns, rows); (1, 1): whole frames

    @property
    def label_names(self) -> tuple[str, ...]:
        return ("defect",) if self.class_agnostic else self.meta.labels

    def pre_process(self, images: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 images of any size -> (B, 3, S, S) float32 network input."""
        return preprocess(images, self.meta.input_size, mean=self.meta.image_mean, std=self.meta.image_std)

    @abstractmethod
    def forward(self, batch: np.ndarray) -> RawOutputs:
        """Run the network on a pre-processed batch."""

    def post_process(self, outputs: RawOutputs, sizes: list[tuple[int, int]]) -> list[Detections]:
        """Decode raw outputs into per-image detections in source pixels; ``sizes`` are (height, width)."""
        decoded = decode_detections(
            outputs.logits,
            outputs.boxes,
            sizes,
            threshold=self.score_threshold,
            top_k=self.top_k,
            class_agnostic=self.class_agnostic,
        )
        return [Detections(*fields) for fields in decoded]

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """Detect in a batch of RGB uint8 images (e.g. the views of one garment)."""
        if not images:
            return []
        if self.tiles != (1, 1):
            return self._detect_tiled(images)
        sizes = [(int(im.shape[0]), int(im.shape[1])) for im in images]
        return self.post_process(self.forward(self.pre_process(images)), sizes)

    def _detect_tiled(self, images: list[np.ndarray]) -> list[Detections]:
        """All tiles of all images in one batch; boxes back in frame pixels, overlap duplicates suppressed."""
        cols, rows = self.tiles
        pieces, owners = [], []
        for i, image in enumerate(images):
            for x1, y1, x2, y2 in tile_windows(
                image.shape[1], image.shape[0], cols, rows, self.meta.tile_overlap
            ):
                pieces.append(np.ascontiguousarray(image[y1:y2, x1:x2]))
                owners.append((i, x1, y1))
        found = self.post_process(
            self.forward(self.pre_process(pieces)), [(p.shape[0], p.shape[1]) for p in pieces]
        )
        results = []
        for i in range(len(images)):
            parts = [(d, x, y) for d, (owner, x, y) in zip(found, owners, strict=True) if owner == i]
            boxes = np.concatenate([d.boxes + np.array([x, y, x, y], np.float32) for d, x, y in parts])
            scores = np.concatenate([d.scores for d, _, _ in parts])
            labels = np.concatenate([d.labels for d, _, _ in parts])
            keep = suppress_duplicates(boxes, scores, labels)[: self.top_k]
            results.append(
                Detections(boxes[keep], scores[keep], labels[keep], max(d.top_score for d, _, _ in parts))
            )
        return results

    def warm_up(self, batch_sizes: tuple[int, ...] = (1,), rounds: int = 2) -> float:
        """Run dummy batches so the first garment does not pay for lazy initialisation.

        Returns the seconds spent.
        """
        started = time.perf_counter()
        size = self.meta.input_size
        for batch_size in batch_sizes:
            dummy = [np.full((size, size, 3), 128, np.uint8)] * batch_size
            for _ in range(rounds):
                self.detect(dummy)
        elapsed = time.perf_counter() - started
        logger.info("detector %s (%s) warmed up in %.2f s", self.meta.version, self.key, elapsed)
        return elapsed

    def close(self) -> None:  # noqa: B027 - optional hook; most runtimes hold nothing to release
        """Release runtime resources."""
