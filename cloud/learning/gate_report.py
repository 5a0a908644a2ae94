"""The gate's report: report.json (everything), report.md (for people) and per_class.png (each class's
difference, candidate - champion, with its paired bootstrap interval and the allowed drop)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from cloud.learning.gate import GateResult


def gate_markdown(result: GateResult) -> str:
    verdict = "PASS" if result.passed else "FAIL"
    lines = [
        f"# Gate: {result.model} version {result.candidate} — {verdict}",
        "",
        f"Champion: {result.champion or 'none (first version)'}; golden set "
        f"{str(result.summary.get('golden_sha256', ''))[:12]}.",
        "",
    ]
    if result.failing:
        lines += ["Failing: " + ", ".join(f"`{c.label}`" for c in result.failing), ""]
    lines += ["| criterion | set | result | detail |", "|---|---|---|---|"]
    lines += [
        f"| {c.name}{' ' + c.subject if c.subject else ''} | {c.set} | "
        f"{'pass' if c.passed else '**fail**'} | "
        f"{c.detail} |"
        for c in result.criteria
    ]
    for name, numbers in result.summary.items():
        if not isinstance(numbers, dict):
            continue
        lines += ["", f"## {name}: {numbers.get('detail', '')}", ""]
        for role in ("candidate", "champion"):
            if role in numbers:
                shown = ", ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers[role].items()
                )
                lines.append(f"- {role}: {shown}")
    if result.classes:
        lines += [
            "",
            "## Per class (candidate - champion, paired bootstrap interval)",
            "",
            "| set | class | n | champion | candidate | diff | interval |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in result.classes:
            interval = f"[{row.low:+.3f}, {row.high:+.3f}]" if row.compared else "too few to compare"
            lines.append(
                f"| {row.set} | {row.label} | {row.examples} | {row.champion:.3f} | {row.candidate:.3f} | "
                f"{row.diff:+.3f} | {interval} |"
            )
    return "\n".join(lines) + "\n"


def per_class_chart(result: GateResult, max_drop: float) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in result.classes if r.compared]
    fig = Figure(figsize=(7, 0.4 * max(3, len(rows)) + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    names = [f"{r.label} ({r.set})" for r in rows]
    for y, r in enumerate(rows):
        ok = r.low > -max_drop
        ax.plot([r.low, r.high], [y, y], color="tab:green" if ok else "tab:red", lw=3)
        ax.plot([r.diff], [y], "o", color="black")
    ax.axvline(-max_drop, color="tab:red", ls="--", lw=1, label=f"allowed drop {-max_drop:+.2f}")
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_yticks(range(len(rows)), names or ["(no class with enough examples)"][: len(rows)])
    ax.set_xlabel("candidate - champion")
    ax.set_title(f"{result.model} v{result.candidate} vs v{result.champion or '-'}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def write_report(result: GateResult, out: Path, *, max_drop: float = 0.02) -> None:
    data = result.to_dict()
    text = json.dumps(data, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v)
    (out / "report.json").write_text(text.replace("NaN", "null") + "\n", encoding="utf-8")
    (out / "report.md").write_text(gate_markdown(result), encoding="utf-8")
    (out / "per_class.png").write_bytes(per_class_chart(result, max_drop))
