"""End to end with the demo models: what the line sees (frame-to-line-command latency, sustained garments/s,
deadline misses, the share handled automatically and its accuracy against the synthetic truth); then the
routing bands swept (0.90-0.97 automatic / 0.60-0.80 high priority) by replaying the recorded verdicts,
drawn as a chart.

Run: .venv/bin/python bench/end_to_end.py [--garments 150] [--rate 1] [--views 1]
     [--chart docs/img/threshold_sweep.png]

The run is the demo itself (`seamline demo`: broker, cloud service with local vLLM, edge agent on ONNX
Runtime, synthetic line), so what is measured is the deployed path with CPU models. No row compares it with
the seed's published 1.6 s, which was full-size models on a GPU: unlike work. The pipeline's own overhead is
measured apart, with constant-time stand-ins for both models, in bench/pipeline_overhead.py. The sweep
re-decides each cloud verdict with the same policy code under other bands (cloud/routing/replay.py): exact,
no model calls. The seed's 70 % automatic at 0.91 accuracy is drawn for reference only (other models, data).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cloud.routing.policy import RoutingPolicy, RoutingPolicyConfig
from cloud.routing.replay import replay
from seamline.config.taxonomy import default_taxonomy
from seamline.demo.runner import run_demo
from seamline.demo.settings import DemoSettings
from seamline.domain import Route

SEED_AUTO_SHARE = 0.70  # reference lines on the chart only: the seed's models and data, not these
SEED_AUTO_ACCURACY = 0.91
AUTO_BANDS = [0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97]
HIGH_BANDS = [0.60, 0.65, 0.70, 0.75, 0.80]


def sweep(traces, taxonomy) -> list[dict]:
    """Each (automatic, high) band pair applied to every recorded garment."""
    rows = []
    for auto in AUTO_BANDS:
        for high in HIGH_BANDS:
            policy = RoutingPolicy(
                RoutingPolicyConfig(
                    auto_threshold=auto,
                    high_priority_below=high,
                    medium_priority_below=max(high, min(0.85, auto)),
                ),
                reject_at=taxonomy.reject_at_severity,
                normal_id=taxonomy.normal.id,
            )
            n = automatic = right = escapes = reviews = high_reviews = 0
            for trace in traces:
                if trace.truth is None or trace.verdict is None:
                    continue
                n += 1
                if trace.verdict["source"] == "edge":
                    decision, route, priority = "pass", "auto", None
                else:
                    routed = replay(trace.verdict, policy)
                    decision, route, priority = (
                        routed.decision.value,
                        routed.route.value,
                        routed.priority.value,
                    )
                if route == Route.AUTO.value:
                    automatic += 1
                    right += decision == trace.truth
                    escapes += decision == "pass" and trace.truth == "reject"
                else:
                    reviews += 1
                    high_reviews += priority == "high"
            rows.append(
                {
                    "auto_threshold": auto,
                    "high_priority_below": high,
                    "garments": n,
                    "auto_share": automatic / n if n else 0.0,
                    "auto_accuracy": right / automatic if automatic else None,
                    "escapes": escapes,
                    "high_priority_share": high_reviews / reviews if reviews else 0.0,
                }
            )
    return rows


def chart(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    at_070 = [r for r in rows if r["high_priority_below"] == 0.70]
    xs = [r["auto_threshold"] for r in at_070]
    left.plot(xs, [r["auto_share"] for r in at_070], "o-", label="handled automatically")
    left.plot(
        xs,
        [r["auto_accuracy"] if r["auto_accuracy"] is not None else float("nan") for r in at_070],
        "s-",
        label="accuracy of automatic decisions",
    )
    left.axhline(SEED_AUTO_SHARE, color="grey", ls="--", lw=0.8, label="seed: 70 % automatic")
    left.axhline(SEED_AUTO_ACCURACY, color="grey", ls=":", lw=0.8, label="seed: 0.91 accuracy")
    left.set_xlabel("automatic threshold (routing confidence)")
    left.set_ylim(0, 1.02)
    left.legend(fontsize=8, loc="lower left")
    left.set_title("automation vs threshold")
    at_095 = [r for r in rows if r["auto_threshold"] == 0.95]
    right.plot(
        [r["high_priority_below"] for r in at_095],
        [r["high_priority_share"] for r in at_095],
        "o-",
        color="tab:red",
    )
    right.set_xlabel("high-priority band (confidence below)")
    right.set_ylabel("share of reviews at high priority")
    right.set_ylim(0, 1.02)
    right.set_title("review priority vs band (automatic at 0.95)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--garments", type=int, default=150)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--views", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(".cache/bench/e2e"))
    parser.add_argument(
        "--detector", type=Path, default=None, help="ONNX detector (default: the shipped demo detector)"
    )
    parser.add_argument(
        "--classifier",
        type=Path,
        default=None,
        help="Qwen2.5-VL folder (default: the shipped demo classifier)",
    )
    parser.add_argument(
        "--chart",
        type=Path,
        default=None,
        help="PNG to draw the sweep in (e.g. docs/img/threshold_sweep.png)",
    )
    args = parser.parse_args()

    # No review console: the benchmark measures the line, and the simulated reviewer would share its two
    # cores.
    settings = DemoSettings(
        garments=args.garments, rate_hz=args.rate, views=args.views, out_dir=args.out, review=False
    )
    settings.detector = args.detector or settings.detector
    settings.classifier = args.classifier or settings.classifier
    result = run_demo(settings, live=False)
    s = result.stats
    console = Console(width=120)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, no GPU"
    table = Table(
        title=f"End to end, demo models, {args.garments} garments at {args.rate}/s, {args.views} view(s) "
        f"({machine})"
    )
    for column in ("measure", "Seamline"):
        table.add_column(column)
    lat, over = s.latency_ms, s.overhead_ms
    table.add_row("frame -> line command p50", f"{lat['p50']:.0f} ms")
    table.add_row("frame -> line command p99", f"{lat['p99']:.0f} ms")
    table.add_row("of which outside model compute, p50 / p99", f"{over['p50']:.1f} / {over['p99']:.1f} ms")
    table.add_row("sustained garments/s", f"{s.garments_per_s:.2f} (belt {args.rate}/s)")
    table.add_row("deadline misses", f"{s.deadline_misses} of {s.garments}")
    table.add_row("handled automatically", f"{s.auto_share:.1%}")
    accuracy = "-" if s.auto_accuracy is None else f"{s.auto_accuracy:.3f}"
    table.add_row("accuracy of automatic decisions", accuracy)
    table.add_row("defective garments passed automatically", str(s.escapes))
    console.print(table)

    rows = sweep(result.monitor.traces.values(), default_taxonomy())
    sweep_table = Table(
        title="Routing bands swept by replaying the recorded verdicts (high-priority band 0.70)"
    )
    for column in ("automatic at", "handled automatically", "accuracy", "defective passed"):
        sweep_table.add_column(column)
    for r in rows:
        if r["high_priority_below"] == 0.70:
            acc = "-" if r["auto_accuracy"] is None else f"{r['auto_accuracy']:.3f}"
            sweep_table.add_row(
                f"{r['auto_threshold']:.2f}", f"{r['auto_share']:.1%}", acc, str(r["escapes"])
            )
    console.print(sweep_table)
    (args.out / "e2e.json").write_text(
        json.dumps({"stats": s.to_dict(), "sweep": rows, "machine": machine}, indent=2) + "\n"
    )
    if args.chart:
        chart(rows, args.chart, f"Seamline demo models, {s.garments} garments, synthetic line ({machine})")
        console.print(f"chart: {args.chart}")


if __name__ == "__main__":
    main()
