"""The gate: a candidate model version replaces nothing unless it is at least as good as the champion.

`seamline gate detector|classifier --candidate VERSION` evaluates the candidate and the champion on the
same examples — the golden set, and the verified labels of the last ``recent_weeks`` weeks that the
candidate did not train on (its ``data_until`` tag) — and passes only if every criterion holds:

* ``floors`` (golden set): detector mAP50 and recall at the operating threshold; classifier type accuracy
  and severity agreement, each at least ``cloud.learning.gate.floors``.
* ``per_class`` (each set): for each class with at least ``min_class_examples`` examples, the lower end of
  the paired bootstrap interval of (candidate - champion) is above ``-max_class_drop`` (default -0.02). The
  metric is recall at the operating threshold for the detector (resampling images: the line's loss is a
  missed defect) and type accuracy for the classifier (resampling crops).
* ``mcnemar`` (classifier, each set): McNemar's exact test on type correctness does not find the candidate
  worse overall at ``mcnemar_alpha``.
* ``routing`` (classifier, each set): the routing policy in force, replayed on each model's answers (one
  crop as one garment, with the detector's score of that crop), gives the candidate's automatic decisions an
  accuracy no lower than the champion's (minus ``routing_tolerance``); compared only when each model
  automates at least ``min_class_examples`` of the set's crops.
* ``latency``: the candidate's p95 per example on the runtime the gate runs it with — ONNX Runtime for the
  detector (the edge's runtime; on the machine the gate runs on), transformers greedy generation for the
  classifier — is within budget.

With no champion (the first version), only the floors and the latency apply, and the report says so. The
statistics are pure functions here; ``run_gate`` (cloud/learning/gate_run.py) feeds them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cloud.learning.config import GateConfig
from cloud.routing.bounds import clopper_pearson
from cloud.routing.policy import RegionResult, RoutingPolicy
from seamline.domain import Decision, Route, Severity


@dataclass
class Criterion:
    """One check: its name (``floors``, ``per_class``...), the set it ran on, pass or fail, and why."""

    name: str
    set: str
    passed: bool
    detail: str
    subject: str | None = None  # the class a per-class check is about

    @property
    def label(self) -> str:
        return f"{self.name}[{self.set}{':' + self.subject if self.subject else ''}]"


@dataclass
class ClassComparison:
    set: str
    label: str
    examples: int
    champion: float
    candidate: float
    diff: float
    low: float
    high: float
    compared: bool  # False: fewer than min_class_examples


@dataclass
class GateResult:
    model: str
    candidate: str
    champion: str | None
    criteria: list[Criterion] = field(default_factory=list)
    classes: list[ClassComparison] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)  # per set and model: the headline numbers

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    @property
    def failing(self) -> list[Criterion]:
        return [c for c in self.criteria if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "candidate": self.candidate,
            "champion": self.champion,
            "passed": self.passed,
            "failing": [c.label for c in self.failing],
            "criteria": [asdict(c) | {"label": c.label} for c in self.criteria],
            "classes": [asdict(c) for c in self.classes],
            "summary": self.summary,
        }


# -- statistics --------------------------------------------------------------------------------------------
def paired_ratio_bootstrap(
    candidate: np.ndarray,
    champion: np.ndarray,
    weight: np.ndarray,
    *,
    resamples: int,
    interval: float,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(difference, low, high) of ``(sum(candidate) - sum(champion)) / sum(weight)``, resampling units.

    Each unit (an image, a crop) carries the candidate's and the champion's successes and its weight (its
    ground-truth boxes; 1 for a crop), resampled together: the pairing removes the examples' difficulty from
    the comparison, so an identical candidate gives exactly 0 with an interval of width 0.
    """
    candidate, champion, weight = (np.asarray(a, float) for a in (candidate, champion, weight))
    total = weight.sum()
    if total <= 0:
        raise ValueError("no examples to compare")
    diff = float((candidate.sum() - champion.sum()) / total)
    rng = np.random.default_rng(seed)
    per_unit = candidate - champion
    draws: list[np.ndarray] = []
    chunk = max(1, 4_000_000 // max(1, len(weight)))
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, len(weight), size=(min(chunk, resamples - start), len(weight)))
        w = weight[idx].sum(1)
        keep = w > 0
        draws.append(per_unit[idx].sum(1)[keep] / w[keep])
    values = np.concatenate(draws)
    tail = (1 - interval) / 2
    return diff, float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def mcnemar_p(champion_only: int, candidate_only: int) -> float:
    """McNemar's exact two-sided p-value from the discordant pairs (right for one model only)."""
    n = champion_only + candidate_only
    if n == 0:
        return 1.0
    k = min(champion_only, candidate_only)
    tail = sum(
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)) for i in range(k + 1)
    )
    return min(1.0, 2 * tail * 0.5**n)


# -- per-model checks --------------------------------------------------------------------------------------
def floor_check(set_name: str, values: dict[str, float], floors: dict[str, float]) -> Criterion:
    low = [
        f"{name} {values[name]:.3f} < {floor:.3f}" for name, floor in floors.items() if values[name] < floor
    ]
    shown = ", ".join(f"{name} {values[name]:.3f} (floor {floor:.3f})" for name, floor in floors.items())
    return Criterion("floors", set_name, not low, "; ".join(low) if low else shown)


def latency_check(set_name: str, p95_ms: float, budget_ms: float, runtime: str) -> Criterion:
    ok = p95_ms <= budget_ms
    return Criterion(
        "latency",
        set_name,
        ok,
        f"p95 {p95_ms:.1f} ms per example on {runtime} ({'<=' if ok else '>'} {budget_ms:.0f})",
    )


def per_class_checks(
    set_name: str,
    per_class: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    cfg: GateConfig,
) -> tuple[list[Criterion], list[ClassComparison]]:
    """Per class: (candidate successes, champion successes, weights) per unit -> paired bootstrap checks."""
    criteria, rows = [], []
    for label, (cand, champ, weight) in sorted(per_class.items()):
        n = int(np.asarray(weight).sum())
        if n == 0:
            continue
        if n < cfg.min_class_examples:
            point = float((np.sum(cand) - np.sum(champ)) / n)
            rows.append(
                ClassComparison(
                    set_name,
                    label,
                    n,
                    float(np.sum(champ) / n),
                    float(np.sum(cand) / n),
                    point,
                    math.nan,
                    math.nan,
                    False,
                )
            )
            continue
        diff, low, high = paired_ratio_bootstrap(
            cand, champ, weight, resamples=cfg.bootstrap_resamples, interval=cfg.interval
        )
        ok = low > -cfg.max_class_drop
        rows.append(
            ClassComparison(
                set_name, label, n, float(np.sum(champ) / n), float(np.sum(cand) / n), diff, low, high, True
            )
        )
        criteria.append(
            Criterion(
                "per_class",
                set_name,
                ok,
                f"{label}: {diff:+.3f} [{low:+.3f}, {high:+.3f}] on {n}; lower end "
                f"{'above' if ok else 'at or below'} {-cfg.max_class_drop:+.3f}",
                subject=label,
            )
        )
    if not criteria:
        few = ", ".join(f"{r.label} {r.examples}" for r in rows) or "none"
        criteria.append(
            Criterion(
                "per_class",
                set_name,
                True,
                f"no class has {cfg.min_class_examples} examples (has: {few}); nothing compared per class",
            )
        )
    return criteria, rows


def mcnemar_check(set_name: str, cand_right: np.ndarray, champ_right: np.ndarray, alpha: float) -> Criterion:
    cand_right, champ_right = np.asarray(cand_right, bool), np.asarray(champ_right, bool)
    champion_only = int((champ_right & ~cand_right).sum())
    candidate_only = int((cand_right & ~champ_right).sum())
    p = mcnemar_p(champion_only, candidate_only)
    worse = champion_only > candidate_only and p < alpha
    return Criterion(
        "mcnemar",
        set_name,
        not worse,
        f"right only for the champion {champion_only}, only for the candidate {candidate_only}, p = {p:.4f}"
        + (f" < {alpha}: worse overall" if worse else ""),
    )


@dataclass(frozen=True)
class Answer:
    """One classifier answer as the routing replay needs it (``type`` None: no valid answer)."""

    type: str | None
    severity: str | None
    decision: str | None
    confidence: float | None
    target_decision: str
    detector_score: float | None = None  # None: unknown (an export without it), taken as 1.0


def automatic_accuracy(answers: list[Answer], policy: RoutingPolicy) -> tuple[int, int]:
    """(automated, right) when ``policy`` decides each answer as a one-crop garment."""
    automated = right = 0
    for i, a in enumerate(answers):
        region = RegionResult(
            crop_id=str(i),
            detector_score=1.0 if a.detector_score is None else a.detector_score,
            type=a.type or "unknown",
            severity=Severity(a.severity) if a.severity not in (None, "none") else None,
            suggested=Decision(a.decision) if a.decision else Decision.REVIEW,
            classifier_confidence=a.confidence,
            error=None if a.type else "no valid answer",
        )
        decision = policy.decide([region])
        if decision.route is Route.AUTO:
            automated += 1
            right += decision.decision.value == a.target_decision
    return automated, right


def routing_check(
    set_name: str,
    candidate: list[Answer],
    champion: list[Answer],
    policy: RoutingPolicy,
    tolerance: float,
    min_automated: int = 20,
) -> tuple[Criterion, dict[str, Any]]:
    numbers = {}
    for name, answers in (("candidate", candidate), ("champion", champion)):
        automated, right = automatic_accuracy(answers, policy)
        low, high = clopper_pearson(right, automated, 0.95) if automated else (0.0, 1.0)
        numbers[name] = {
            "automated": automated,
            "right": right,
            "share": automated / len(answers) if answers else 0.0,
            "accuracy": right / automated if automated else None,
            "interval": [low, high],
        }
    cand, champ = numbers["candidate"]["accuracy"], numbers["champion"]["accuracy"]
    if champ is None:
        ok, why = True, "the champion automates none of these; nothing to lower"
    elif cand is None:
        ok, why = True, f"the candidate automates none (champion {champ:.3f}); nothing automatic to be wrong"
    else:
        counts = numbers["candidate"]["automated"], numbers["champion"]["automated"]
        why = f"automatic accuracy {cand:.3f} on {counts[0]} vs champion {champ:.3f} on {counts[1]}"
        if min(counts) < min_automated:  # one wrong garment of five is not a measured drop
            ok, why = True, f"{why}: too few automatic decisions to compare (needs {min_automated} each)"
        else:
            ok = cand >= champ - tolerance
    return Criterion("routing", set_name, ok, why), numbers
