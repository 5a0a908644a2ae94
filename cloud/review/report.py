"""The weekly review report: what people decided, how often the AI agreed, where it went wrong.

It carries the seed's weekly JSON (week, total reviews, agreement, false positives / negatives /
misclassifications, top error patterns with an action each) and adds what the seed left out: per-class
precision and recall from reviewed regions (missed defects the reviewers drew count against recall), a daily
and an eight-week trend, and the seed's retraining triggers evaluated on the week. Weeks are ISO weeks in UTC.

It also counts the garments the cloud heard of that week (by capture time): those the edge sent for
inspection and those it dropped without inspecting (its detector fell behind the camera), by reason, so a
week's figures account for every garment that reached the cloud or its audit trail. Garments the edge passed
itself (nothing detected) never reach the cloud and are not in these counts.

Agreement is agreements / (reviews - unanswered): a garment the classifier could not answer says nothing about
its accuracy. (The seed's example, 8,400 reviews with 680 + 412 + 100 errors, gives 0.858, not the 0.87 it
printed.)

Two kinds of review answer two questions. Garments *routed* to people are the ones the policy was unsure of,
so agreement on them (``agreement_rate``, labelled so) says how hard the hard cases are, not how good the
system is. *Audit samples* (cloud/routing/audit.py) are an unbiased share of the garments settled
automatically, reviewed blind: ``automatic`` reports, from them alone, the accuracy of automatic decisions
(the reviewer's garment decision equals the automatic one) with its exact 95 % interval and the number of
samples it rests on, and the retraining trigger on disagreement reads them.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from cloud.learning.config import TriggerConfig
from cloud.learning.triggers import retrain_reasons
from cloud.review.feedback import ERRORS, Outcome
from cloud.routing.bounds import clopper_pearson
from cloud.storage.audit import DROPPED_AT_EDGE
from cloud.storage.tables import garments as garment_rows
from cloud.storage.tables import review_decisions, review_feedback, review_items, verified_labels
from seamline.config.taxonomy import Taxonomy

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
OUTCOMES = [o.value for o in Outcome]


def iso_week(text: str) -> datetime:
    """Monday 00:00 UTC of ISO week ``YYYY-Www``."""
    match = _WEEK.match(text.strip())
    if not match:
        raise ValueError(f"week {text!r}: expected YYYY-Www, e.g. 2026-W48")
    try:
        day = datetime.strptime(f"{match[1]}-W{match[2]}-1", "%G-W%V-%u").replace(tzinfo=timezone.utc)
    except ValueError as exc:
        raise ValueError(f"week {text!r}: no such ISO week") from exc
    if week_label(day) != text.strip():  # strptime rolls 2025-W53 over into 2026-W01
        raise ValueError(f"week {text!r}: no such ISO week")
    return day


def week_label(start: datetime) -> str:
    return start.strftime("%G-W%V")


def weekly_report(
    engine: sa.Engine,
    start: datetime,
    taxonomy: Taxonomy,
    *,
    trend_weeks: int = 8,
    triggers: TriggerConfig | None = None,
    days: float = 7,
) -> dict[str, Any]:
    """The report for the ISO week starting at ``start`` (a Monday, timezone.utc); ``days`` other than 7 is
    the window the learning worker checks its triggers over. ``triggers``: the configured thresholds."""
    end = start + timedelta(days=days)
    trend_start = start - timedelta(days=7 * (trend_weeks - 1))
    with engine.connect() as conn:
        decisions = (
            conn.execute(
                sa.select(
                    review_decisions.c.item_id,
                    review_decisions.c.reviewer_id,
                    review_decisions.c.decision,
                    review_decisions.c.outcome,
                    review_decisions.c.decided_at,
                    review_items.c.kind,
                )
                .join(review_items, review_items.c.item_id == review_decisions.c.item_id)
                .where(review_decisions.c.decided_at >= trend_start, review_decisions.c.decided_at < end)
            )
            .mappings()
            .all()
        )
        regions = (
            conn.execute(
                sa.select(review_feedback).where(
                    review_feedback.c.decided_at >= start, review_feedback.c.decided_at < end
                )
            )
            .mappings()
            .all()
        )
        verified = (
            conn.execute(
                sa.select(sa.func.count())
                .select_from(verified_labels)
                .where(verified_labels.c.verified_at >= start, verified_labels.c.verified_at < end)
            ).scalar()
            or 0
        )
        # the automatic decisions of the audit samples decided this week (their AI verdicts)
        audited = conn.execute(
            sa.select(review_decisions.c.decision, garment_rows.c.verdict)
            .join(review_items, review_items.c.item_id == review_decisions.c.item_id)
            .join(garment_rows, garment_rows.c.item_id == review_decisions.c.item_id)
            .where(
                review_items.c.kind == "audit",
                review_decisions.c.decided_at >= start,
                review_decisions.c.decided_at < end,
            )
        ).all()
        passed = conn.execute(
            sa.select(review_decisions.c.verdict)
            .join(review_items, review_items.c.item_id == review_decisions.c.item_id)
            .where(
                review_items.c.kind == "passed_audit",
                review_decisions.c.decided_at >= start,
                review_decisions.c.decided_at < end,
            )
        ).scalars()
        missed = [any(d["type"] != taxonomy.normal.id for d in v.get("defects", [])) for v in passed]
        settled = conn.execute(
            sa.select(garment_rows.c.verdict).where(
                garment_rows.c.captured_at >= start,
                garment_rows.c.captured_at < end,
                garment_rows.c.verdict.is_not(None),
            )
        ).scalars()
        automatic_settled = sum(1 for v in settled if v.get("route") == "auto")
        sampled = conn.execute(
            sa.select(sa.func.count())
            .select_from(review_items)
            .join(garment_rows, garment_rows.c.item_id == review_items.c.item_id)
            .where(
                review_items.c.kind == "audit",
                garment_rows.c.captured_at >= start,
                garment_rows.c.captured_at < end,
            )
        ).scalar()
        seen = conn.execute(
            sa.select(garment_rows.c.status, garment_rows.c.drop_reason, sa.func.count())
            .where(garment_rows.c.captured_at >= start, garment_rows.c.captured_at < end)
            .group_by(garment_rows.c.status, garment_rows.c.drop_reason)
        ).all()
    decisions = [dict(d) for d in decisions]
    routed_decisions = [d for d in decisions if d["kind"] != "audit"]
    week = [d for d in decisions if d["decided_at"] >= start]
    routed = [d for d in week if d["kind"] != "audit"]
    audit = [d for d in week if d["kind"] == "audit"]

    garments = Counter(d["outcome"] for d in routed)
    region_counts = Counter(r["outcome"] for r in regions)
    agreement = _agreement(garments)
    per_class = _per_class(regions, [taxonomy.normal.id, *taxonomy.type_ids])
    severity_pairs = [r["severity_agrees"] for r in regions if r["severity_agrees"] is not None]
    report: dict[str, Any] = {
        "week": week_label(start),
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "line": _line(seen),
        "total_reviews": len(week),
        # on garments routed to people: the unsure ones, by construction (not the system's accuracy)
        "agreement_rate": agreement,
        "routed_reviews": len(routed),
        "automatic": _automatic(
            audited, Counter(d["outcome"] for d in audit), automatic_settled, sampled or 0
        ),
        "missed_defects": _missed(missed),
        "garments": {o: garments.get(o, 0) for o in OUTCOMES},
        "regions": {o: region_counts.get(o, 0) for o in OUTCOMES},
        "severity_agreement": round(sum(severity_pairs) / len(severity_pairs), 4) if severity_pairs else None,
        "decisions": {k: sum(1 for d in week if d["decision"] == k) for k in ("pass", "reject")},
        "reviewers": dict(Counter(d["reviewer_id"] for d in week).most_common()),
        "new_verified_labels": int(verified),
        "per_class": per_class,
        "top_error_patterns": _patterns(regions),
        "daily": _series(routed, start, days=7, step=timedelta(days=1), label=lambda t: t.date().isoformat()),
        "trend": _series(
            routed_decisions, trend_start, days=7 * trend_weeks, step=timedelta(days=7), label=week_label
        ),
    }
    report["retrain"] = _retrain(report, triggers or TriggerConfig())
    return report


def _automatic(audited: list[Any], outcomes: Counter, settled: int, sampled: int) -> dict[str, Any]:
    """The accuracy of automatic decisions, from the week's decided audit samples only.

    ``audited`` holds (reviewer's decision, AI verdict) rows; an automatic decision is correct when the
    reviewer's garment decision is the same. ``agreement`` is the stricter region-level agreement (types too).
    """
    correct = sum(1 for decision, verdict in audited if verdict and verdict.get("decision") == decision)
    n = len(audited)
    low, high = clopper_pearson(correct, n, 0.95)
    return {
        "settled_automatically": settled,
        "audit_samples_queued": sampled,
        "audit_samples_decided": n,
        "correct": correct,
        "accuracy": round(correct / n, 4) if n else None,
        "accuracy_interval_95": [round(low, 4), round(high, 4)] if n else None,
        "agreement": _agreement(outcomes),
    }


def _missed(missed: list[bool]) -> dict[str, Any]:
    """Defects the detector missed, per 1,000 garments it passed, from the week's decided audit samples of
    passed garments (``missed``: one flag per sample, True when the reviewer found a defect)."""
    n, k = len(missed), sum(missed)
    low, high = clopper_pearson(k, n, 0.95)
    return {
        "passed_samples_decided": n,
        "with_defect": k,
        "per_1000": round(1000 * k / n, 2) if n else None,
        "per_1000_interval_95": [round(1000 * low, 2), round(1000 * high, 2)] if n else None,
    }


def _line(seen: list[Any]) -> dict[str, Any]:
    """Garments captured in the week that the cloud recorded: sent for inspection, and dropped at the edge
    by reason. ``seen`` holds (status, drop reason, count) rows."""
    dropped = Counter({reason: n for status, reason, n in seen if status == DROPPED_AT_EDGE})
    inspected = sum(n for status, _, n in seen if status != DROPPED_AT_EDGE)
    return {
        "garments": inspected + sum(dropped.values()),
        "sent_for_inspection": inspected,
        "dropped_at_edge": sum(dropped.values()),
        "dropped_by_reason": dict(sorted(dropped.items())),
    }


def _agreement(outcomes: Counter) -> float | None:
    answered = sum(n for o, n in outcomes.items() if o != Outcome.UNANSWERED.value)
    return round(outcomes.get(Outcome.AGREEMENT.value, 0) / answered, 4) if answered else None


def _per_class(regions: list[Any], labels: list[str]) -> dict[str, dict[str, Any]]:
    stats: dict[str, dict[str, int]] = {label: {"tp": 0, "predicted": 0, "actual": 0} for label in labels}
    for r in regions:
        ai, human = r["ai_type"], r["human_type"]
        if ai == "unknown":
            continue
        if human in stats:
            stats[human]["actual"] += 1
        if ai in stats:  # None: a drawn box, never predicted
            stats[ai]["predicted"] += 1
            if ai == human:
                stats[ai]["tp"] += 1
    return {
        label: {
            **s,
            "precision": round(s["tp"] / s["predicted"], 4) if s["predicted"] else None,
            "recall": round(s["tp"] / s["actual"], 4) if s["actual"] else None,
        }
        for label, s in stats.items()
    }


_ACTIONS = {
    Outcome.FALSE_POSITIVE.value: (
        "Add hard negatives that look like {ai} (prints, shadows, lint) to the training data; "
        "stronger photometric augmentation."
    ),
    Outcome.FALSE_NEGATIVE.value: (
        "Add verified {human} examples; check the detector's recall and threshold for this look."
    ),
    Outcome.MISCLASSIFICATION.value: (
        "Sharpen the prompt's {ai} vs {human} descriptions; "
        "add contrasting few-shot examples and training crops."
    ),
}


def _patterns(regions: list[Any], top: int = 10) -> list[dict[str, Any]]:
    errors = Counter(
        (r["outcome"], r["ai_type"] or "(missed by detector)", r["human_type"])
        for r in regions
        if r["outcome"] in {e.value for e in ERRORS}
    )
    return [
        {
            "kind": kind,
            "ai": ai,
            "human": human,
            "count": n,
            "pattern": f"AI {ai} -> reviewer {human}",
            "action": _ACTIONS[kind].format(ai=ai, human=human),
        }
        for (kind, ai, human), n in errors.most_common(top)
    ]


def _series(
    decisions: list[dict[str, Any]], start: datetime, *, days: int, step: timedelta, label
) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    buckets: dict[int, Counter] = defaultdict(Counter)
    for d in decisions:
        index = int((d["decided_at"] - start) / step)
        buckets[index][d["outcome"]] += 1
    count = int(timedelta(days=days) / step)
    return [
        {
            "label": label(start + i * step),
            "reviews": sum(buckets[i].values()),
            "agreement_rate": _agreement(buckets[i]),
        }
        for i in range(count)
    ]


def _retrain(report: dict[str, Any], triggers: TriggerConfig) -> dict[str, Any]:
    reasons = retrain_reasons(report, triggers, report["new_verified_labels"])
    return {"triggered": bool(reasons), "reasons": reasons}


def _missed_line(missed: dict[str, Any]) -> str:
    n = missed["passed_samples_decided"]
    if not n:
        return "- Missed defects: no audit sample of a passed garment decided this week (unknown)"
    low, high = missed["per_1000_interval_95"]
    return (
        f"- Missed defects: **{missed['per_1000']:.1f} per 1,000 passed garments** (95 % interval "
        f"{low:.1f}-{high:.1f}) on {n} blind samples of garments the edge passed"
    )


def _automatic_line(automatic: dict[str, Any]) -> str:
    settled, n = automatic["settled_automatically"], automatic["audit_samples_decided"]
    if not n:
        return f"- Settled automatically: **{settled}**; no audit sample decided this week (accuracy unknown)"
    low, high = automatic["accuracy_interval_95"]
    return (
        f"- Settled automatically: **{settled}**; accuracy of automatic decisions "
        f"**{automatic['accuracy']:.1%}** (95 % interval {low:.1%}-{high:.1%}) on {n} blind audit samples"
    )


def report_markdown(report: dict[str, Any]) -> str:
    """A short human-readable version of the report."""
    g = report["garments"]
    rate = report["agreement_rate"]
    decisions = report["decisions"]
    retrain = report["retrain"]
    line = report["line"]
    reasons = ", ".join(f"{reason} {n}" for reason, n in line["dropped_by_reason"].items())
    lines = [
        f"# Review report {report['week']}",
        "",
        (
            f"- Garments recorded: **{line['garments']}** "
            f"(sent for inspection {line['sent_for_inspection']}, "
            f"dropped at the edge {line['dropped_at_edge']}{f': {reasons}' if reasons else ''})"
        ),
        f"- Reviews: **{report['total_reviews']}** (pass {decisions['pass']}, reject {decisions['reject']})",
        _automatic_line(report["automatic"]),
        _missed_line(report["missed_defects"]),
        (
            f"- AI-human agreement on the {report['routed_reviews']} garments routed to people (the unsure "
            f"ones): **{'n/a' if rate is None else f'{rate:.1%}'}**"
        ),
        (
            f"- False positives {g['false_positive']}, false negatives {g['false_negative']}, "
            f"misclassifications {g['misclassification']}, unanswered {g['unanswered']}"
        ),
        f"- New verified labels: {report['new_verified_labels']}",
        f"- Retrain: **{'yes' if retrain['triggered'] else 'no'}** {'; '.join(retrain['reasons'])}",
        "",
        "## Per class (reviewed regions)",
        "",
        "| class | predicted | actual | precision | recall |",
        "|---|---|---|---|---|",
    ]

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    for label, s in report["per_class"].items():
        if s["predicted"] or s["actual"]:
            lines.append(
                f"| {label} | {s['predicted']} | {s['actual']} | {fmt(s['precision'])} | {fmt(s['recall'])} |"
            )
    lines += ["", "## Top error patterns", "", "| count | kind | pattern | action |", "|---|---|---|---|"]
    lines += [
        f"| {p['count']} | {p['kind']} | {p['pattern']} | {p['action']} |"
        for p in report["top_error_patterns"]
    ]
    return "\n".join(lines) + "\n"
