"""The reports of ``seamline routing calibrate`` and ``replay``: report.json, report.md, curve.png and the
terminal table, built from a window of replayed garments (cloud/routing/replay.py) and a calibration
(cloud/routing/calibrate.py). Rendering only: nothing here reads the store or decides a threshold.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cloud.routing.calibrate import Calibration, PerDecision
from cloud.routing.policy import RoutingPolicyConfig
from cloud.routing.replay import CurvePoint, RoutingPoint
from seamline.clock import utcnow


@dataclass(frozen=True)
class Window:
    """The garments of the audit store in --since / --line, replayed."""

    config: Path
    audit_store: str  # the URL, password hidden
    since: datetime | None
    line: str | None
    policy: RoutingPolicyConfig  # the policy in force (the config's cloud.routing)
    points: list[RoutingPoint]  # replayed under the policy in force, or under ``other`` when given


def _window_json(window: Window) -> dict[str, Any]:
    points = window.points
    strata: dict[str, Counter] = {}
    for p in points:
        counts = strata.setdefault(p.stratum, Counter())
        counts["garments"] += 1
        counts["verified"] += p.human is not None
        counts["awaiting_review"] += p.awaiting_review
    return {
        "config": str(window.config),
        "audit_store": window.audit_store,
        "since": window.since.isoformat() if window.since else None,
        "line": window.line,
        "garments": len(points),
        "verified": sum(p.human is not None for p in points),
        "policy_versions": dict(Counter(p.recorded_policy for p in points).most_common()),
        "strata": {
            key: {**counts, "verified_share": counts["verified"] / counts["garments"]}
            for key, counts in sorted(strata.items())
        },
    }


def _point_json(point: CurvePoint) -> dict[str, Any]:
    c, b = point.counts, point.bounds
    return {
        "threshold": c.threshold,
        "automated": c.automated,
        "share": c.share,
        "passes": c.passes,
        "rejects": c.rejects,
        "verified": c.labelled,
        "correct": c.correct,
        "accuracy": b.estimate,
        "lower_bound": b.low,
        "unverified_share": b.unverified_share,
        "strata": {
            s.stratum: {"automated": s.automated, "verified": s.labelled, "correct": s.correct}
            for s in c.strata
        },
    }


def _curves(points: list[RoutingPoint], thresholds: list[float], confidence: float) -> dict[str, Any]:
    """The curve over ``thresholds``, and per decision and per deciding type (descriptive: only the global
    curve is what calibration certifies)."""
    from cloud.routing.replay import accuracy_curve

    curve = [_point_json(p) for p in accuracy_curve(points, thresholds, confidence)]
    coarse = thresholds[:: max(1, len(thresholds) // 25)]
    groups: dict[str, dict[str, list[RoutingPoint]]] = {"decision": {}, "type": {}}
    for p in points:
        if p.decision is not None:
            groups["decision"].setdefault(p.decision.value, []).append(p)
            groups["type"].setdefault(p.deciding_type, []).append(p)
    by = {
        kind: {
            name: [_point_json(c) for c in accuracy_curve(members, coarse, confidence, garments=len(points))]
            for name, members in sorted(found.items())
            if any(m.human is not None for m in members)
        }
        for kind, found in groups.items()
    }
    return {"curve": curve, "by_decision": by["decision"], "by_type": by["type"]}


def calibration_report(
    window: Window,
    result: Calibration,
    decisions: PerDecision,
    new_policy: RoutingPolicyConfig | None,
    step: float,
) -> dict[str, Any]:
    from cloud.routing.replay import accuracy_curve, share_grid

    points = window.points
    current = result.current.auto_threshold
    thresholds = sorted({*share_grid(points, step=step), current, result.threshold}, reverse=True)
    at_current, at_chosen = accuracy_curve(points, [current, result.threshold], result.confidence)
    tested = {t.counts.threshold: t.certified for t in result.tested}
    stop = result.tested[-1].counts.threshold if result.tested else None
    curves = _curves(points, thresholds, result.confidence)
    for row in curves["curve"]:
        # what the sequence did here: certified, not certified (where it stopped), skipped (its sample could
        # not certify the target even with few errors), or None (below the stop, or nothing tested)
        threshold = row["threshold"]
        if threshold in tested:
            row["test"] = "certified" if tested[threshold] else "not certified"
        else:
            row["test"] = "skipped" if stop is not None and threshold > stop else None
    return {
        "command": "seamline routing calibrate",
        "created_at": utcnow().isoformat(),
        "target_accuracy": result.target,
        "confidence": result.confidence,
        "changed": result.changed,
        "reason": result.reason,
        "window": _window_json(window),
        "current_policy": result.current.model_dump(),
        "new_policy": new_policy.model_dump() if new_policy else None,
        "current": _point_json(at_current),
        "chosen": _point_json(at_chosen) if result.chosen else None,
        "tested": len(result.tested),
        "per_decision": {
            "note": "RoutingPolicyConfig has one auto_threshold; a per-decision policy would need policy.py "
            "to hold one per decision. Each is certified at half the error budget, so both hold together; a "
            "decision that cannot be certified keeps the current threshold.",
            "automated_share": decisions.share,
            "single_threshold_share": decisions.single_share,
            "thresholds": {
                d.value: {"threshold": c.threshold, "certified": c.chosen is not None, "reason": c.reason}
                for d, c in decisions.by_decision.items()
            },
        },
        "method": _METHOD,
        **curves,
    }


def replay_report(
    window: Window, recorded: list[RoutingPoint], other: RoutingPolicyConfig, confidence: float, step: float
) -> dict[str, Any]:
    from cloud.routing.replay import accuracy_bounds, share_grid, threshold_counts

    def side(points: list[RoutingPoint], threshold: float) -> dict[str, Any]:
        (counts,) = threshold_counts(points, [threshold])
        bounds = accuracy_bounds(counts.strata, confidence, two_sided=True)
        return {
            "automated": counts.automated,
            "share": counts.share,
            "decisions": {
                "pass": counts.passes,
                "reject": counts.rejects,
                "review": len(points) - counts.automated,
            },
            "verified": counts.labelled,
            "correct": counts.correct,
            "accuracy": bounds.estimate,
            "interval": [bounds.low, bounds.high] if counts.labelled else None,
        }

    points = window.points
    changed = sum(
        (r.decision if r.automated(0.0) else None)
        != (p.decision if p.automated(other.auto_threshold) else None)
        for r, p in zip(recorded, points)
    )
    thresholds = sorted({*share_grid(points, step=step), other.auto_threshold}, reverse=True)
    return {
        "command": "seamline routing replay",
        "created_at": utcnow().isoformat(),
        "confidence": confidence,
        "window": _window_json(window),
        "recorded": {"policies": sorted({p.recorded_policy for p in recorded}), **side(recorded, 0.0)},
        "other": {"policy": other.model_dump(), **side(points, other.auto_threshold)},
        "verdicts_changed": changed,
        "method": _METHOD,
        **_curves(points, thresholds, confidence),
    }


_METHOD = (
    "Each garment of the window is replayed under the policy's knobs (only auto_threshold moves). Accuracy "
    "of automatic decisions = share of automated garments whose decision is the reviewer's. Garments are "
    "stratified by how they were recorded: routed to people (all reviewed) or settled automatically, per "
    "line and policy version (reviewed only as audit samples). Each stratum weighs its share of all "
    "automated garments; the bound is the weighted sum of per-stratum exact Clopper-Pearson bounds with the "
    "error budget split between strata (union bound). calibrate tests the candidate thresholds from the "
    "highest down (Learn then Test, fixed-sequence testing) and keeps the lowest certified one; see "
    "cloud/routing/calibrate.py."
)


def policy_yaml(policy: RoutingPolicyConfig, result: Calibration, today: date) -> str:
    import yaml

    head = (
        f"# Routing policy calibrated by `seamline routing calibrate` on {today:%Y-%m-%d}: automatic\n"
        f"# decisions at accuracy >= {result.target:g} with {result.confidence:.0%} confidence "
        f"({result.verified} verified garments; report.md beside this file).\n"
        "# To use it, replace the routing: mapping of your configuration's cloud: section with this one.\n"
    )
    return head + yaml.safe_dump({"routing": policy.model_dump()}, sort_keys=False)


def write_report(out: Path, report: dict[str, Any], markdown: str) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown, encoding="utf-8")
    (out / "curve.png").write_bytes(_curve_chart(report))


def _pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}%}"


def _curve_table(rows: list[dict[str, Any]], keep: set[float], confidence: float) -> list[str]:
    # about 25 rows of the curve (report.json has every one), always with the current and chosen thresholds
    step = max(1, len(rows) // 25)
    shown = [r for i, r in enumerate(rows) if i % step == 0 or r["threshold"] in keep]
    tests = "test" in rows[0] if rows else False
    head = f"| threshold | automated | share | verified | accuracy | lower bound ({confidence:.0%}) |"
    lines = [
        head + (" test |" if tests else ""),
        "|---:|---:|---:|---:|---:|---:|" + ("---|" if tests else ""),
    ]
    for r in shown:
        line = (
            f"| {r['threshold']:.4f} | {r['automated']} | {_pct(r['share'])} | {r['verified']} | "
            f"{_pct(r['accuracy'], 2)} | {_pct(r['lower_bound'], 2)} |"
        )
        lines.append(line + (f" {r['test'] or ''} |" if tests else ""))
    return lines


def _strata_table(window: dict[str, Any]) -> list[str]:
    lines = [
        "| stratum | garments | verified | share verified | awaiting review |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, s in window["strata"].items():
        lines.append(
            f"| {key} | {s['garments']} | {s['verified']} | {_pct(s['verified_share'])} | "
            f"{s['awaiting_review']} |"
        )
    return lines


def calibration_markdown(r: dict[str, Any]) -> str:
    current, chosen, decisions = r["current"], r["chosen"], r["per_decision"]
    lines = [
        "# Routing calibration",
        "",
        f"Target: accuracy of automatic decisions >= {r['target_accuracy']:g} with {r['confidence']:.0%} "
        f"confidence. Window: {r['window']['garments']} garments ({r['window']['verified']} verified), "
        f"{r['window']['audit_store']}, since {r['window']['since'] or 'the start'}"
        f"{', line ' + r['window']['line'] if r['window']['line'] else ''}.",
        "",
        f"**{'New policy ' + r['new_policy']['version'] if r['changed'] else 'Policy kept'}**: "
        f"{r['reason']}.",
        "",
        f"- current: auto_threshold {current['threshold']:g}, automated {_pct(current['share'])}, accuracy "
        f"{_pct(current['accuracy'], 2)} (lower bound {_pct(current['lower_bound'], 2)})",
    ]
    if chosen:
        lines.append(
            f"- chosen: auto_threshold {chosen['threshold']:g}, automated {_pct(chosen['share'])}, accuracy "
            f"{_pct(chosen['accuracy'], 2)} (lower bound {_pct(chosen['lower_bound'], 2)}), "
            f"{chosen['verified']} verified garments: "
            + ", ".join(f"{k} {v['verified']}/{v['automated']}" for k, v in chosen["strata"].items())
        )
    lines += ["", "## Samples per stratum", "", *_strata_table(r["window"]), "", "## The curve", ""]
    lines += _curve_table(
        r["curve"], {current["threshold"], (chosen or current)["threshold"]}, r["confidence"]
    )
    lines += [
        "",
        "test: where the sequence stopped (not certified), what it certified on the way down, and thresholds "
        "skipped because their sample could not certify the target even with few errors.",
    ]
    lines += ["", "## Per decision (not a policy yet)", "", decisions["note"], ""]
    for name, d in decisions["thresholds"].items():
        lines.append(
            f"- {name}: {d['threshold']:g} ({'certified' if d['certified'] else 'not certified'}): "
            f"{d['reason']}"
        )
    lines.append(
        f"- together they would automate {_pct(decisions['automated_share'])}, against "
        f"{_pct(decisions['single_threshold_share'])} with one threshold"
    )
    at = (chosen or current)["threshold"]
    lines += ["", "## Per deciding type, near the chosen threshold (descriptive)", ""]
    lines += [*_type_table(r["by_type"], at), ""]
    lines += ["## Method", "", r["method"], ""]
    return "\n".join(lines)


def _type_table(by_type: dict[str, list[dict[str, Any]]], at: float) -> list[str]:
    # the per-type curves are on a coarse grid: the row nearest ``at``
    lines = ["| deciding type | threshold | automated | verified | accuracy |", "|---|---:|---:|---:|---:|"]
    for name, rows in by_type.items():
        row = min(rows, key=lambda x: abs(x["threshold"] - at))
        lines.append(
            f"| {name} | {row['threshold']:.4f} | {row['automated']} | {row['verified']} | "
            f"{_pct(row['accuracy'], 2)} |"
        )
    return lines


def replay_markdown(r: dict[str, Any]) -> str:
    rec, oth = r["recorded"], r["other"]
    lines = [
        "# Routing replay",
        "",
        f"{r['window']['garments']} garments ({r['window']['verified']} verified), "
        f"{r['window']['audit_store']}.",
        "",
        "| | recorded (" + ", ".join(rec["policies"]) + f") | {oth['policy']['version']} |",
        "|---|---:|---:|",
    ]
    lines.append(f"| automated share | {_pct(rec['share'])} | {_pct(oth['share'])} |")
    for decision in ("pass", "reject", "review"):
        lines.append(f"| {decision} | {rec['decisions'][decision]} | {oth['decisions'][decision]} |")
    lines.append(
        f"| accuracy of automatic decisions | {_accuracy(rec, r['confidence'])} | "
        f"{_accuracy(oth, r['confidence'])} |"
    )
    lines += ["", f"{r['verdicts_changed']} garments get another verdict.", ""]
    lines += ["## The curve (under the other policy's knobs, one-sided bound)", ""]
    lines += _curve_table(r["curve"], {oth["policy"]["auto_threshold"]}, r["confidence"])
    lines += ["", "## Per deciding type, near the other policy's threshold (descriptive)", ""]
    lines += _type_table(r["by_type"], oth["policy"]["auto_threshold"])
    lines += ["", "## Method", "", r["method"], ""]
    return "\n".join(lines)


def _accuracy(side: dict[str, Any], confidence: float) -> str:
    if not side["verified"]:
        return "no verified automatic garment"
    low, high = side["interval"]
    interval = f"[{_pct(low, 2)}, {_pct(high, 2)}]"
    return f"{_pct(side['accuracy'], 2)} {interval} ({confidence:.0%}, n={side['verified']})"


def print_comparison(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    rec, oth = r["recorded"], r["other"]
    table = Table(title=f"Replay of {r['window']['garments']} garments ({r['window']['verified']} verified)")
    table.add_column("")
    table.add_column("recorded (" + ", ".join(rec["policies"]) + ")", justify="right")
    table.add_column(oth["policy"]["version"], justify="right")
    table.add_row("garments", str(r["window"]["garments"]), str(r["window"]["garments"]))
    table.add_row("automated share", _pct(rec["share"]), _pct(oth["share"]))
    for decision in ("pass", "reject", "review"):
        table.add_row(decision, str(rec["decisions"][decision]), str(oth["decisions"][decision]))
    table.add_row(
        "accuracy of automatic decisions", _accuracy(rec, r["confidence"]), _accuracy(oth, r["confidence"])
    )
    console = Console(width=140)
    console.print(table)
    console.print(f"{r['verdicts_changed']} garments get another verdict under {oth['policy']['version']}.")


def _curve_chart(report: dict[str, Any]) -> bytes:
    """Automated share against accuracy: estimate, lower bound, the target, the current and chosen points."""
    import io

    from seamline.optional import require

    require("matplotlib", "The calibration chart", extra="review")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    rows = [r for r in report["curve"] if r["accuracy"] is not None]
    shares = [r["share"] for r in rows]
    ax.plot(shares, [r["accuracy"] for r in rows], color="#2980b9", label="accuracy (estimate)")
    ax.plot(shares, [r["lower_bound"] for r in rows], color="#2980b9", linestyle=":", label="lower bound")
    for name, curve in report["by_decision"].items():
        kept = [c for c in curve if c["accuracy"] is not None]
        ax.plot(
            [c["share"] for c in kept],
            [c["accuracy"] for c in kept],
            linestyle="--",
            alpha=0.6,
            label=f"{name} only",
        )
    if "target_accuracy" in report:
        ax.axhline(report["target_accuracy"], color="#c0392b", linewidth=1, label="target")
    marks = [("current", report.get("current"), "o"), ("chosen", report.get("chosen"), "*")]
    if "other" in report:
        marks = [
            (
                "other policy",
                {"share": report["other"]["share"], "accuracy": report["other"]["accuracy"]},
                "*",
            )
        ]
    for label, point, marker in marks:
        if point and point.get("accuracy") is not None:
            ax.plot(
                [point["share"]], [point["accuracy"]], marker=marker, markersize=10, linestyle="", label=label
            )
    floor = min([r["accuracy"] for r in rows] + [report.get("target_accuracy", 1.0) - 0.05], default=0.9)
    ax.set_ylim(max(0.0, floor - 0.01), 1.001)
    ax.set_xlim(0, max(shares, default=1.0) * 1.05 or 1.0)
    ax.set_xlabel("automated share of garments")
    ax.set_ylabel("accuracy of automatic decisions")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()
