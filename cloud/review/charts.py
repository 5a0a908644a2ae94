"""The weekly report's pictures (matplotlib, PNG).

Daily reviews and agreement, the eight-week trend, the error breakdown, and per-class precision and recall.
"""

from __future__ import annotations

import io
from typing import Any

CHARTS = ("daily", "trend", "errors", "classes")


def render_chart(name: str, report: dict[str, Any]) -> bytes:
    # matplotlib's object API, not pyplot: pyplot's global state is not thread-safe, and the report page asks
    # for its four charts at once (each drawn in a worker thread).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if name in ("daily", "trend"):
        series = report[name]
        labels = [s["label"][5:] if name == "daily" else s["label"] for s in series]
        ax.bar(labels, [s["reviews"] for s in series], color="#9ab8d8", label="reviews")
        ax.set_ylabel("reviews")
        twin = ax.twinx()
        rates = [s["agreement_rate"] for s in series]
        twin.plot(
            labels,
            [r if r is not None else float("nan") for r in rates],
            color="#c0392b",
            marker="o",
            label="agreement",
        )
        twin.set_ylim(0, 1)
        twin.set_ylabel("AI-human agreement")
        ax.set_title("This week, per day" if name == "daily" else "Last weeks")
        ax.tick_params(axis="x", labelrotation=30)
    elif name == "errors":
        kinds = ["agreement", "false_positive", "false_negative", "misclassification", "unanswered"]
        values = [report["garments"][k] for k in kinds]
        ax.barh(
            [k.replace("_", " ") for k in kinds],
            values,
            color=["#27ae60", "#e67e22", "#c0392b", "#8e44ad", "#95a5a6"],
        )
        ax.set_xlabel("garments")
        ax.set_title("Reviewer vs AI")
    elif name == "classes":
        rows = [(k, v) for k, v in report["per_class"].items() if v["predicted"] or v["actual"]]
        xs = range(len(rows))
        ax.bar(
            [x - 0.2 for x in xs],
            [v["precision"] or 0 for _, v in rows],
            width=0.4,
            label="precision",
            color="#2980b9",
        )
        ax.bar(
            [x + 0.2 for x in xs],
            [v["recall"] or 0 for _, v in rows],
            width=0.4,
            label="recall",
            color="#16a085",
        )
        ax.set_xticks(list(xs), [k for k, _ in rows], rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.legend(loc="lower right")
        ax.set_title("Per class, from reviewed regions")
    else:
        raise ValueError(f"unknown chart {name!r}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
