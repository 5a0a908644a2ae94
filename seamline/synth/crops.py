"""Crops around the synthetic line's true defects.

Ready-made classifier inputs for tests, benchmarks and demos.
"""

from __future__ import annotations

import numpy as np

from seamline.config.synth import SynthConfig
from seamline.imaging import encode_jpeg
from seamline.synth.line import SyntheticLine


def defect_crops(count: int, *, seed: int = 0, pad: int = 24, quality: int = 90) -> list[bytes]:
    """``count`` JPEG crops, each around one true defect (padded by ``pad`` pixels), in garment order."""
    line = SyntheticLine(SynthConfig(seed=seed, defect_free_share=0.0))
    crops: list[bytes] = []
    index = 0
    while len(crops) < count:
        garment = line.garment(index)
        index += 1
        for defect in garment.defects:
            x1, y1, x2, y2 = (int(v) for v in defect.box)
            image = garment.views[defect.view_index].image
            crop = image[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad]
            crops.append(encode_jpeg(np.ascontiguousarray(crop), quality))
    return crops[:count]
