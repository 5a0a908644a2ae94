"""What one demo run does: how many garments at what rate, which models, which parts to start."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEMO_MODELS = REPO / "models" / "demo"


@dataclass
class DemoSettings:
    garments: int = 120
    rate_hz: float = 1.0  # what 2 CPU cores sustain with the tiled detector and vLLM sharing them
    views: int = 1
    seed: int = 7  # a synthetic line seed the demo models never trained on (training used 100 and 200)
    out_dir: Path = Path("demo-run")
    detector: Path = DEMO_MODELS / "detector" / "detector.onnx"
    classifier: Path = DEMO_MODELS / "classifier"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    auto_threshold: float | None = None  # routing band overrides (None: the policy's 0.95 / 0.70)
    high_priority_below: float | None = None
    ready_timeout_s: float = 600.0
    review: bool = True  # start the review console
    simulated_reviewer: bool = True  # a bot decides the review queue from the synthetic truth
    hold: bool = False  # keep the console (and the cloud) running after the line ends, until Ctrl-C
    # --learn: after the line, one turn of the learning loop, then the line again with a canary
    learn: bool = False
    learn_steps: int = 300  # optimizer steps of the candidate, from the champion (about 1 min here)
    canary_share: float = (
        0.5  # of garments the candidate decides on the second run (a line would start at 0.1)
    )
    extra: dict[str, Any] = field(default_factory=dict)
