"""`seamline rollout report`: each model version's numbers over the rollout window, and a recommendation.

Per classifier version (the one a verdict names as having decided it), from the audit store:

* garments decided, the automated share (route auto);
* the accuracy of automatic decisions, from the version's decided audit samples only (an unbiased share of
  its automatic verdicts, reviewed blind), with the exact 95 % interval: the number that says whether the
  candidate is as good as the champion;
* reviewer agreement on garments routed to people (the hard cases, labelled as such);
* classify time p50 / p95 and the share of verdicts decided after the garment's deadline;
* for a shadow candidate: how often its answer's type agrees with the champion's on the same crops, and its
  type accuracy on crops people have labelled since.

Per detector version (``models.detector`` on the garments): garments, the missed defects per 1,000
garments it passed (its passed-garment audit samples) with the exact interval, its p95 detect time on the
edge and the share of its garments whose cloud verdict came after their deadline (the line's fail-safe then
diverted them).

The recommendation, for a canary (``cloud.learning.promotion``): keep while the candidate has fewer than
``min_audit_samples`` decided audit samples; roll back when the candidate is clearly worse (the upper end of
its accuracy interval below the champion's accuracy minus ``max_accuracy_drop``, p95 classify time over
``max_latency_ratio`` times the champion's, or late verdicts up by more than ``max_late_increase``); promote
when its accuracy is at least the champion's minus ``max_accuracy_drop`` and its automated share at least the
champion's minus ``max_automation_drop``; keep otherwise. A champion that settles too few garments by itself
to have ``min_audit_samples`` audit samples cannot be compared with: the candidate's accuracy is then held to
``min_automatic_accuracy`` instead (roll back when its upper bound is below, promote when it reaches it).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

from cloud.learning.config import PromotionConfig
from cloud.routing.bounds import clopper_pearson
from cloud.storage.rollouts import current
from cloud.storage.tables import garments, review_decisions, review_items, shadow_answers, verified_labels
from seamline.clock import utcnow


def _interval(k: int, n: int) -> list[float] | None:
    if not n:
        return None
    low, high = clopper_pearson(k, n, 0.95)
    return [round(low, 4), round(high, 4)]


def _late(verdict: dict[str, Any]) -> bool:
    stamps = verdict.get("timestamps") or {}
    deadline, decided = stamps.get("deadline_at"), stamps.get("decided_at")
    return bool(deadline and decided and datetime.fromisoformat(decided) > datetime.fromisoformat(deadline))


def rollout_report(
    engine: sa.Engine, criteria: PromotionConfig, *, since: datetime | None = None, normal_id: str = "normal"
) -> dict[str, Any]:
    """The report over garments captured since ``since`` (default: ``criteria.window_days`` back)."""
    end = utcnow()
    start = since or end - timedelta(days=criteria.window_days)
    state = current(engine)
    with engine.connect() as conn:
        verdicts = conn.execute(
            sa.select(garments.c.item_id, garments.c.verdict, garments.c.detector_version).where(
                garments.c.captured_at >= start, garments.c.verdict.is_not(None)
            )
        ).all()
        reviewed = conn.execute(
            sa.select(
                review_items.c.item_id,
                review_items.c.kind,
                review_decisions.c.decision,
                review_decisions.c.outcome,
                review_decisions.c.verdict,
            )
            .join(review_decisions, review_decisions.c.item_id == review_items.c.item_id)
            .join(garments, garments.c.item_id == review_items.c.item_id)
            .where(garments.c.captured_at >= start)
        ).all()
        shadows = (
            conn.execute(
                sa.select(shadow_answers)
                .join(garments, garments.c.item_id == shadow_answers.c.item_id)
                .where(garments.c.captured_at >= start)
            )
            .mappings()
            .all()
        )
        labels = {
            (r.item_id, r.crop_id): r.type
            for r in conn.execute(
                sa.select(verified_labels.c.item_id, verified_labels.c.crop_id, verified_labels.c.type)
                .join(garments, garments.c.item_id == verified_labels.c.item_id)
                .where(garments.c.captured_at >= start, verified_labels.c.crop_id.is_not(None))
            )
        }
    by_item = {item_id: verdict for item_id, verdict, _ in verdicts}

    versions: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"garments": 0, "auto": 0, "late": 0, "classify_ms": [], "arms": defaultdict(int)}
    )
    detectors: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"garments": 0, "passed_samples": 0, "missed": 0, "late": 0, "detect_ms": []}
    )
    for _, verdict, detector_version in verdicts:
        if detector_version:
            detector = detectors[detector_version]
            detector["garments"] += 1
            detector["late"] += _late(verdict)
            detect = (verdict.get("timings_ms") or {}).get("edge_detect")
            if detect is not None:
                detector["detect_ms"].append(detect)
        if verdict.get("source") != "cloud":
            continue
        version = (verdict.get("models") or {}).get("classifier") or "unknown"
        row = versions[version]
        row["garments"] += 1
        row["auto"] += verdict.get("route") == "auto"
        row["late"] += _late(verdict)
        if "classify" in (verdict.get("timings_ms") or {}):
            row["classify_ms"].append(verdict["timings_ms"]["classify"])
        row["arms"][((verdict.get("rollout") or {}).get("arm")) or "champion"] += 1

    audit: dict[str, list[bool]] = defaultdict(list)
    routed: dict[str, list[str]] = defaultdict(list)
    for item_id, kind, decision, outcome, human_verdict in reviewed:
        ai = by_item.get(item_id) or {}
        if kind == "passed_audit":
            detector = ((human_verdict or {}).get("models") or {}).get("detector") or ai.get(
                "models", {}
            ).get("detector")
            found = any(d.get("type") != normal_id for d in (human_verdict or {}).get("defects", []))
            if detector:
                detectors[detector]["passed_samples"] += 1
                detectors[detector]["missed"] += found
            continue
        version = (ai.get("models") or {}).get("classifier") or "unknown"
        if kind == "audit":
            audit[version].append(ai.get("decision") == decision)
        else:
            routed[version].append(outcome)

    out_versions = {}
    for version, row in versions.items():
        samples = audit.get(version, [])
        correct = sum(samples)
        answered = [o for o in routed.get(version, []) if o != "unanswered"]
        times = np.asarray(row["classify_ms"], dtype=float)
        out_versions[version] = {
            "garments": row["garments"],
            "arms": dict(row["arms"]),
            "automated_share": round(row["auto"] / row["garments"], 4) if row["garments"] else None,
            "audit_samples_decided": len(samples),
            "accuracy": round(correct / len(samples), 4) if samples else None,
            "accuracy_interval_95": _interval(correct, len(samples)),
            "routed_reviews": len(routed.get(version, [])),
            "routed_agreement": round(answered.count("agreement") / len(answered), 4) if answered else None,
            "classify_ms_p50": round(float(np.percentile(times, 50)), 1) if times.size else None,
            "classify_ms_p95": round(float(np.percentile(times, 95)), 1) if times.size else None,
            "late_share": round(row["late"] / row["garments"], 4) if row["garments"] else None,
        }

    out_shadows: dict[str, dict[str, Any]] = {}
    grouped: dict[str, list[Any]] = defaultdict(list)
    for shadow in shadows:
        grouped[shadow["version"]].append(shadow)
    for version, rows in grouped.items():
        pairs, labelled = [], []
        for shadow in rows:
            champion = next(
                (
                    d
                    for d in (by_item.get(shadow["item_id"]) or {}).get("defects", [])
                    if d.get("crop_id") == shadow["crop_id"]
                ),
                None,
            )
            if champion is not None and shadow["type"] is not None:
                pairs.append(champion["type"] == shadow["type"])
            truth = labels.get((shadow["item_id"], shadow["crop_id"]))
            if truth is not None and shadow["type"] is not None:
                labelled.append(truth == shadow["type"])
        out_shadows[version] = {
            "crops": len(rows),
            "errors": sum(1 for r in rows if r["error"]),
            "type_agreement_with_champion": round(sum(pairs) / len(pairs), 4) if pairs else None,
            "labelled_crops": len(labelled),
            "type_accuracy": round(sum(labelled) / len(labelled), 4) if labelled else None,
            "type_accuracy_interval_95": _interval(sum(labelled), len(labelled)),
        }

    out_detectors = {
        version: {
            "garments": row["garments"],
            "passed_samples": row["passed_samples"],
            "missed": row["missed"],
            "detect_ms_p95": round(float(np.percentile(row["detect_ms"], 95)), 1)
            if row["detect_ms"]
            else None,
            "late_share": round(row["late"] / row["garments"], 4) if row["garments"] else None,
            "missed_per_1000": round(1000 * row["missed"] / row["passed_samples"], 2)
            if row["passed_samples"]
            else None,
            "missed_per_1000_interval_95": [
                round(1000 * b, 2) for b in _interval(row["missed"], row["passed_samples"])
            ]
            if row["passed_samples"]
            else None,
        }
        for version, row in detectors.items()
    }
    report = {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "rollout": state.model_dump(mode="json") if state else None,
        "classifier": out_versions,
        "shadow": out_shadows,
        "detector": out_detectors,
    }
    report["recommendation"] = recommend(report, criteria)
    return report


def recommend(report: dict[str, Any], criteria: PromotionConfig) -> dict[str, Any]:
    """promote / keep / roll back for the current canary, with the reasons (see the module's text)."""
    state = report.get("rollout") or {}
    if state.get("mode") != "canary" or not state.get("candidate"):
        return {"action": "none", "reasons": [f"no canary is running (mode {state.get('mode', 'off')})"]}
    candidate_version = state["candidate"]["version"]
    rows = report["classifier"]
    candidate = rows.get(candidate_version)
    champions = [v for v, row in rows.items() if v != candidate_version and row["arms"].get("champion")]
    champion = max((rows[v] for v in champions), key=lambda r: r["garments"], default=None)
    need = criteria.min_audit_samples
    if candidate is None or champion is None:
        return {"action": "keep", "reasons": ["no verdicts of both the champion and the candidate yet"]}
    if candidate["audit_samples_decided"] < need:
        return {
            "action": "keep",
            "reasons": [
                f"candidate has {candidate['audit_samples_decided']} decided audit samples (needs {need})"
            ],
        }
    reasons = []
    if (
        candidate["classify_ms_p95"] is not None
        and champion["classify_ms_p95"]
        and candidate["classify_ms_p95"] > criteria.max_latency_ratio * champion["classify_ms_p95"]
    ):
        reasons.append(
            f"p95 classify {candidate['classify_ms_p95']} ms is over {criteria.max_latency_ratio}x the "
            f"champion's {champion['classify_ms_p95']} ms"
        )
    if candidate["late_share"] - champion["late_share"] > criteria.max_late_increase:
        reasons.append(f"late verdicts {candidate['late_share']} vs the champion's {champion['late_share']}")
    accuracy, upper = candidate["accuracy"], candidate["accuracy_interval_95"][1]
    automates = candidate["automated_share"] >= champion["automated_share"] - criteria.max_automation_drop
    if champion["audit_samples_decided"] < need:
        # The champion settles (almost) nothing by itself: there is no accuracy of its to compare with, so
        # the candidate's automatic decisions must reach the line's bar on their own.
        bar = criteria.min_automatic_accuracy
        against = (
            f"min_automatic_accuracy {bar} (the champion has {champion['audit_samples_decided']} decided "
            "audit samples, too few to compare with)"
        )
    else:
        bar = champion["accuracy"] - criteria.max_accuracy_drop
        against = f"the champion's {champion['accuracy']} - {criteria.max_accuracy_drop}"
    if upper < bar:
        reasons.append(f"accuracy {accuracy} (95 % upper {upper}) is below {against}")
    if reasons:
        return {"action": "rollback", "reasons": reasons}
    shares = f"automated share {candidate['automated_share']} vs {champion['automated_share']}"
    if accuracy >= bar and automates:
        return {"action": "promote", "reasons": [f"accuracy {accuracy} against {against}, {shares}"]}
    return {
        "action": "keep",
        "reasons": [f"not clearly better or worse: accuracy {accuracy} against {against}, {shares}"],
    }


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a short Markdown page (the console's reports page and the CLI's stderr)."""
    lines = [f"# Rollout report ({report['period']['start'][:10]} to {report['period']['end'][:10]})", ""]
    state = report.get("rollout")
    if state:
        candidate = (state.get("candidate") or {}).get("version")
        lines.append(
            f"Classifier rollout revision {state['revision']}: **{state['mode']}**"
            + (f" {state['share']:g}" if state["share"] else "")
            + (f", candidate {candidate}" if candidate else "")
        )
        lines.append("")
    lines += [
        "| classifier | garments | automated | audit n | accuracy (95 %) | routed agreement | p95 ms "
        "| late |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for version, row in report["classifier"].items():
        interval = row["accuracy_interval_95"]
        lines.append(
            f"| {version} | {row['garments']} | {row['automated_share']} | {row['audit_samples_decided']} | "
            f"{row['accuracy']} {interval or ''} | {row['routed_agreement']} | {row['classify_ms_p95']} | "
            f"{row['late_share']} |"
        )
    if report["shadow"]:
        lines += [
            "",
            "| shadow | crops | agrees with champion | labelled | type accuracy |",
            "|---|---|---|---|---|",
        ]
        for version, row in report["shadow"].items():
            lines.append(
                f"| {version} | {row['crops']} | {row['type_agreement_with_champion']} | "
                f"{row['labelled_crops']} | {row['type_accuracy']} |"
            )
    if report["detector"]:
        lines += [
            "",
            "| detector | garments | passed samples | missed per 1,000 (95 %) | p95 detect ms | late |",
            "|---|---|---|---|---|---|",
        ]
        for version, row in report["detector"].items():
            lines.append(
                f"| {version} | {row['garments']} | {row['passed_samples']} | {row['missed_per_1000']} "
                f"{row['missed_per_1000_interval_95'] or ''} | {row['detect_ms_p95']} | {row['late_share']} |"
            )
    rec = report["recommendation"]
    lines += ["", f"**Recommendation: {rec['action']}**", *[f"- {r}" for r in rec["reasons"]]]
    return "\n".join(lines) + "\n"
