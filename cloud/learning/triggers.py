"""The retraining triggers (thresholds: ``cloud.learning.triggers``), read from a report of the audit store.

The weekly report (cloud/review/report.py) shows which fire; the learning worker (cloud/learning/worker.py)
acts on them over its own window. Disagreement is measured on audit samples only: garments routed to people
are the unsure ones by construction, so their disagreement says nothing about the automatic decisions.
"""

from __future__ import annotations

from typing import Any

from cloud.learning.config import TriggerConfig


def retrain_reasons(report: dict[str, Any], cfg: TriggerConfig, new_verified: int) -> list[str]:
    """The triggers that fire, in words (none: no retraining is due)."""
    reasons = []
    if new_verified >= cfg.min_new_verified:
        reasons.append(f"{new_verified} new verified labels (>= {cfg.min_new_verified})")
    automatic = report["automatic"]
    agreement, decided = automatic["agreement"], automatic["audit_samples_decided"]
    if (
        agreement is not None
        and decided >= cfg.min_audit_samples
        and 1 - agreement >= cfg.max_audit_disagreement
    ):
        reasons.append(
            f"disagreement {1 - agreement:.2f} on {decided} audit samples (>= {cfg.max_audit_disagreement})"
        )
    for label, s in report["per_class"].items():
        if (
            s["predicted"] >= cfg.min_class_predictions
            and s["precision"] is not None
            and s["precision"] < cfg.min_class_precision
        ):
            reasons.append(
                f"{label} precision {s['precision']:.2f} "
                f"(< {cfg.min_class_precision} on {s['predicted']} predictions)"
            )
    return reasons
