"""Sliced inference for small defects on large frames.

A 1280x720 frame squashed into a 320x320 network input shrinks a 3 cm snag to a few pixels. Cutting the frame
into overlapping tiles (2x2 by default when a model was trained that way) and detecting in each keeps small
defects several times larger at the input; detections are shifted back to frame coordinates and duplicates
from the overlaps are suppressed. The tile grid is a property of the model (it is trained on tile-sized
windows), so it travels in the model's metadata; the edge configuration may override it.
"""

from __future__ import annotations

import math

import numpy as np


def tile_size(width: int, height: int, cols: int, rows: int, overlap: float) -> tuple[int, int]:
    """Tile (width, height) so that ``cols`` x ``rows`` tiles overlapping by ``overlap`` cover the frame."""
    tw = width if cols == 1 else math.ceil(width / (cols - (cols - 1) * overlap))
    th = height if rows == 1 else math.ceil(height / (rows - (rows - 1) * overlap))
    return min(tw, width), min(th, height)


def tile_windows(
    width: int, height: int, cols: int, rows: int, overlap: float
) -> list[tuple[int, int, int, int]]:
    """(x1, y1, x2, y2) of each tile, row by row, evenly spread from edge to edge."""
    tw, th = tile_size(width, height, cols, rows, overlap)
    xs = [0] if cols == 1 else [round(i * (width - tw) / (cols - 1)) for i in range(cols)]
    ys = [0] if rows == 1 else [round(j * (height - th) / (rows - 1)) for j in range(rows)]
    return [(x, y, x + tw, y + th) for y in ys for x in xs]


def suppress_duplicates(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float = 0.5
) -> np.ndarray:
    """Indices kept by greedy per-label non-maximum suppression.

    Also drops a box mostly inside a better one.
    """
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    for i in order:
        duplicate = False
        for k in keep:
            if labels[k] != labels[i]:
                continue
            x1, y1 = max(boxes[i, 0], boxes[k, 0]), max(boxes[i, 1], boxes[k, 1])
            x2, y2 = min(boxes[i, 2], boxes[k, 2]), min(boxes[i, 3], boxes[k, 3])
            inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
            union = areas[i] + areas[k] - inter
            if union > 0 and (inter / union >= iou or inter >= 0.8 * min(areas[i], areas[k])):
                duplicate = True
                break
        if not duplicate:
            keep.append(int(i))
    return np.array(keep, dtype=np.int64)
