"""The synthetic conveyor line: seeded procedural garments with defects, distractors and ground truth."""

from seamline.config.synth import SynthConfig
from seamline.synth.dataset import DatasetSummary, write_dataset
from seamline.synth.line import DefectTruth, DistractorTruth, SyntheticLine, SynthGarment, SynthView

__all__ = [
    "DatasetSummary",
    "DefectTruth",
    "DistractorTruth",
    "SynthConfig",
    "SynthGarment",
    "SynthView",
    "SyntheticLine",
    "write_dataset",
]
