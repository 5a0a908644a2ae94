"""Physical size and intensity of each defect, and the taxonomy's severity rubric applied to them.

A defect is sampled inside the bracket of a target severity, then rated by the rule for its type, so the
severity a garment carries always follows from what was drawn. Sizes are in centimetres on the garment;
the line turns them into pixels with its px-per-cm scale (8 px/cm at 1280x720 over a 90 cm belt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from seamline.domain import Severity

MINOR, MODERATE, SEVERE = Severity.MINOR, Severity.MODERATE, Severity.SEVERE


@dataclass(frozen=True)
class DefectSize:
    """What was drawn, in physical terms."""

    size_cm: float  # extent: a stain's or hole's diameter, a tear's or open seam's length, a patch's width
    strength: float = 1.0  # 0..1: opacity, tone shift, or the damaged share of a print
    count: int = 1  # pills, missing buttons, snags or smears
    mode: str = ""  # variant: zipper tab/teeth/split, makeup foundation/lipstick/deodorant, ...


def _by_size(minor_below: float, severe_above: float) -> Callable[[DefectSize], Severity]:
    def rule(d: DefectSize) -> Severity:
        if d.size_cm > severe_above:
            return SEVERE
        return MINOR if d.size_cm < minor_below else MODERATE

    return rule


def _discoloration(d: DefectSize) -> Severity:
    if d.size_cm >= 10.0 or d.strength >= 0.4:
        return SEVERE
    return MODERATE if d.strength >= 0.16 else MINOR


def _pilling(d: DefectSize) -> Severity:
    if d.size_cm >= 7.5:
        return SEVERE
    return MODERATE if d.count >= 15 else MINOR


def _missing_button(d: DefectSize) -> Severity:
    if d.count >= 2:
        return SEVERE
    return MINOR if d.mode == "decorative" else MODERATE


def _zipper(d: DefectSize) -> Severity:
    return {"tab": MINOR, "teeth": MODERATE}.get(d.mode, SEVERE)


def _snag(d: DefectSize) -> Severity:
    if d.count >= 3 or d.size_cm > 3.0:
        return SEVERE
    return MODERATE if d.size_cm >= 1.0 else MINOR


def _print_damage(d: DefectSize) -> Severity:
    if d.strength >= 0.25:
        return SEVERE
    return MODERATE if d.strength >= 0.06 else MINOR


def _makeup(d: DefectSize) -> Severity:
    if d.count >= 2:
        return SEVERE
    return MODERATE if d.strength >= 0.4 else MINOR


# The rubric of taxonomy.yaml, as measurable rules.
RULES: dict[str, Callable[[DefectSize], Severity]] = {
    "stain": _by_size(1.0, 3.0),  # < 1 cm minor, 1-3 cm moderate, > 3 cm severe
    "tear": _by_size(0.5, 2.0),  # < 0.5 cm, 0.5-2 cm, > 2 cm
    "discoloration": _discoloration,  # tone shift < 16 % minor; >= 40 % or >= 10 cm across severe
    "pilling": _pilling,  # a few pills minor; >= 15 pills moderate; a patch >= 7.5 cm severe
    "hole": _by_size(0.2, 1.0),  # < 2 mm, 2-10 mm, > 1 cm
    "missing_button": _missing_button,  # the decorative collar button minor; one moderate; several severe
    "broken_zipper": _zipper,  # pull tab gone minor; teeth gone moderate; track split severe
    "open_seam": _by_size(1.0, 4.0),  # < 1 cm, 1-4 cm, > 4 cm
    "snag": _snag,  # a short loop < 1 cm minor; a long pulled thread moderate; a run > 3 cm or 3 snags severe
    "print_damage": _print_damage,  # < 6 % of the print gone (cracks) minor; < 25 % moderate; more severe
    "makeup_mark": _makeup,  # faint trace minor; a clear smear moderate; several marks severe
    "fraying": _by_size(2.0, 6.0),  # a few threads < 2 cm, a frayed stretch 2-6 cm, unravelling > 6 cm
}

# (size cm, strength, count) ranges per severity; modes where the rubric is categorical.
_Range = tuple[float, float]
BRACKETS: dict[str, dict[Severity, dict[str, object]]] = {
    "stain": {
        MINOR: {"size": (0.5, 0.95), "strength": (0.6, 0.85)},
        MODERATE: {"size": (1.15, 2.85), "strength": (0.6, 0.9)},
        SEVERE: {"size": (3.2, 7.0), "strength": (0.7, 0.95)},
    },
    "tear": {MINOR: {"size": (0.32, 0.48)}, MODERATE: {"size": (0.6, 1.9)}, SEVERE: {"size": (2.2, 7.0)}},
    "discoloration": {
        MINOR: {"size": (2.5, 6.0), "strength": (0.11, 0.15)},
        MODERATE: {"size": (2.5, 9.0), "strength": (0.18, 0.34)},
        SEVERE: {"size": (10.0, 16.0), "strength": (0.25, 0.55)},
    },
    "pilling": {
        MINOR: {"size": (1.2, 2.5), "count": (4, 9)},
        MODERATE: {"size": (2.5, 5.0), "count": (22, 45)},
        SEVERE: {"size": (8.0, 13.0), "count": (110, 220)},
    },
    "hole": {MINOR: {"size": (0.14, 0.19)}, MODERATE: {"size": (0.3, 0.95)}, SEVERE: {"size": (1.15, 4.0)}},
    "missing_button": {
        MINOR: {"size": (1.0, 1.0), "mode": ("decorative",)},
        MODERATE: {"size": (1.0, 1.0), "mode": ("functional",)},
        SEVERE: {"size": (1.0, 1.0), "count": (2, 3), "mode": ("functional",)},
    },
    "broken_zipper": {
        MINOR: {"size": (2.5, 3.0), "mode": ("tab",)},
        MODERATE: {"size": (1.2, 2.5), "mode": ("teeth",)},
        SEVERE: {"size": (4.0, 9.0), "mode": ("split",)},
    },
    "open_seam": {
        MINOR: {"size": (0.55, 0.95)},
        MODERATE: {"size": (1.2, 3.8)},
        SEVERE: {"size": (4.3, 10.0)},
    },
    "snag": {
        MINOR: {"size": (0.4, 0.9)},
        MODERATE: {"size": (1.2, 2.8)},
        SEVERE: {"size": (3.3, 6.0), "mode": ("run", "cluster")},
    },
    "print_damage": {
        MINOR: {"size": (1.0, 1.0), "strength": (0.025, 0.05), "mode": ("cracks",)},
        MODERATE: {"size": (1.0, 1.0), "strength": (0.08, 0.2), "mode": ("peel",)},
        SEVERE: {"size": (1.0, 1.0), "strength": (0.3, 0.55), "mode": ("peel",)},
    },
    "makeup_mark": {
        MINOR: {"size": (1.0, 2.5), "strength": (0.3, 0.38)},
        MODERATE: {"size": (1.5, 3.5), "strength": (0.5, 0.8)},
        SEVERE: {"size": (4.5, 7.0), "strength": (0.5, 0.8), "count": (2, 3)},
    },
    "fraying": {
        MINOR: {"size": (1.0, 1.9), "count": (4, 7), "mode": ("threads",)},
        MODERATE: {"size": (2.3, 5.5), "mode": ("fringe",)},
        SEVERE: {"size": (6.5, 12.0), "mode": ("fringe",)},
    },
}

_SEVERITY_WEIGHTS = {MINOR: 0.34, MODERATE: 0.34, SEVERE: 0.32}


def severity_of(type_id: str, size: DefectSize) -> Severity:
    """The rubric's severity for a defect of ``type_id`` drawn at ``size``."""
    return RULES[type_id](size)


def feasible_severities(type_id: str, max_cm: float | None) -> list[Severity]:
    """Severities whose smallest size fits under ``max_cm`` (all when None)."""
    out = []
    for sev, spec in BRACKETS[type_id].items():
        lo = spec["size"][0]  # type: ignore[index]
        if max_cm is None or lo <= max_cm or type_id in {"missing_button", "print_damage"}:
            out.append(sev)
    return out


def sample_size(
    type_id: str, rng: np.random.Generator, severity: Severity | None = None, max_cm: float | None = None
) -> DefectSize:
    """Draw physical parameters for ``type_id``; pick a severity first unless one is given."""
    if severity is None:
        options = feasible_severities(type_id, max_cm) or list(BRACKETS[type_id])
        weights = np.array([_SEVERITY_WEIGHTS[s] for s in options])
        severity = options[int(rng.choice(len(options), p=weights / weights.sum()))]
    spec = BRACKETS[type_id][severity]
    lo, hi = spec["size"]  # type: ignore[misc]
    if max_cm is not None and type_id not in {"missing_button", "print_damage"}:
        hi = max(lo, min(hi, max_cm))
    size = float(rng.uniform(lo, hi))
    strength = float(rng.uniform(*spec["strength"])) if "strength" in spec else 1.0  # type: ignore[misc]
    count_range = spec.get("count", (1, 1))
    count = int(rng.integers(count_range[0], count_range[1] + 1))  # type: ignore[index]
    modes = spec.get("mode", ("",))
    mode = str(modes[int(rng.integers(len(modes)))])  # type: ignore[arg-type]
    drawn = DefectSize(size, strength, count, mode)
    if severity_of(type_id, drawn) is not severity:  # a bracket that disagrees with its rule is a bug here
        raise AssertionError(
            f"{type_id}: bracket for {severity.value} rates as {severity_of(type_id, drawn).value}"
        )
    return drawn
