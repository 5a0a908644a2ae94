"""Defect renderers, one per taxonomy type, with their sizes, severity rules and placement."""

from seamline.synth.defects import marks, openings, trims  # noqa: F401  (importing registers the renderers)
from seamline.synth.defects.base import (
    RENDERERS,
    DefectRenderer,
    Patch,
    UnknownDefectType,
    renderer,
    renderer_for,
)
from seamline.synth.defects.placement import PlacedDefect, plan_defects
from seamline.synth.defects.sizing import DefectSize, sample_size, severity_of

__all__ = [
    "RENDERERS",
    "DefectRenderer",
    "DefectSize",
    "Patch",
    "PlacedDefect",
    "UnknownDefectType",
    "plan_defects",
    "renderer",
    "renderer_for",
    "sample_size",
    "severity_of",
]
