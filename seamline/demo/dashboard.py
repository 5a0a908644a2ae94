"""The demo's terminal view: a live table when the terminal is interactive, a line every few seconds when
not (CI logs), and the end-of-run summary in Markdown."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from seamline.demo.monitor import LineStats
from seamline.demo.settings import DemoSettings


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def stats_table(settings: DemoSettings, stats: LineStats, title: str = "Seamline demo") -> Table:
    table = Table(title=title, show_header=False, min_width=60)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row(
        "garments",
        f"{stats.garments} / {settings.garments}  ({stats.garments_per_s:.2f}/s, belt {settings.rate_hz}/s)",
    )
    table.add_row("line actions", ", ".join(f"{k} {v}" for k, v in sorted(stats.actions.items())) or "-")
    table.add_row("causes", ", ".join(f"{k} {v}" for k, v in sorted(stats.causes.items())) or "-")
    table.add_row("routes", ", ".join(f"{k} {v}" for k, v in sorted(stats.routes.items())) or "-")
    lat = stats.latency_ms
    table.add_row("frame -> command", f"p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}, max {_ms(lat['max'])}")
    over = stats.overhead_ms
    table.add_row("overhead (no model)", f"p50 {_ms(over['p50'])}, p99 {_ms(over['p99'])}")
    table.add_row("deadline misses", str(stats.deadline_misses))
    table.add_row("handled automatically", _share(stats.auto_share))
    table.add_row("automatic accuracy", f"{_share(stats.auto_accuracy)} ({stats.escapes} defective passed)")
    table.add_row("classifier errors", str(stats.errors))
    table.add_row("messages off contract", str(stats.invalid_messages))
    if settings.review:
        table.add_row(
            "reviewed by people", f"{stats.reviewed} of {stats.routes.get('human', 0)} routed to them"
        )
        review = stats.extra.get("review") or {}
        if review.get("agreement_rate") is not None:
            g = review["garments"]
            table.add_row(
                "AI-reviewer agreement",
                f"{review['agreement_rate']:.1%} (false positives {g['false_positive']}, "
                f"false negatives {g['false_negative']}, misclassified {g['misclassification']})",
            )
    return table


class Dashboard:
    def __init__(self, settings: DemoSettings, *, live: bool = True, every_s: float = 5.0) -> None:
        self.settings = settings
        self.console = Console()
        self.interactive = live and self.console.is_terminal
        self.every_s = every_s
        self._last = 0.0
        self._live: Live | None = None

    def __enter__(self) -> Dashboard:
        if self.interactive:
            self._live = Live(console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def phase(self, message: str) -> None:
        self.console.print(f"[bold cyan]>[/] {message}")

    def tick(self, stats: LineStats) -> None:
        if self._live is not None:
            self._live.update(stats_table(self.settings, stats))
            return
        now = time.monotonic()
        if stats.garments and now - self._last >= self.every_s:
            self._last = now
            lat = stats.latency_ms
            print(
                f"garments {stats.garments}/{self.settings.garments} ({stats.garments_per_s:.2f}/s)  "
                f"actions {dict(sorted(stats.actions.items()))}  "
                f"p50 {_ms(lat['p50'])} p99 {_ms(lat['p99'])}  "
                f"auto {_share(stats.auto_share)}  deadline misses {stats.deadline_misses}",
                file=sys.stdout,
                flush=True,
            )


def summary_markdown(settings: DemoSettings, stats: LineStats) -> str:
    lat, over = stats.latency_ms, stats.overhead_ms
    rows = [
        ("garments commanded", f"{stats.garments} of {settings.garments}"),
        ("sustained rate", f"{stats.garments_per_s:.2f} garments/s (belt set to {settings.rate_hz}/s)"),
        ("line actions", ", ".join(f"{k} {v}" for k, v in sorted(stats.actions.items()))),
        ("causes", ", ".join(f"{k} {v}" for k, v in sorted(stats.causes.items()))),
        ("verdict routes", ", ".join(f"{k} {v}" for k, v in sorted(stats.routes.items()))),
        (
            "frame -> line command",
            f"p50 {_ms(lat['p50'])}, p90 {_ms(lat['p90'])}, p99 {_ms(lat['p99'])}, max {_ms(lat['max'])}",
        ),
        (
            "overhead outside model compute",
            f"p50 {_ms(over['p50'])}, p99 {_ms(over['p99'])} ({over['n']} garments)",
        ),
        ("deadline misses", str(stats.deadline_misses)),
        ("handled automatically", _share(stats.auto_share)),
        ("accuracy of automatic decisions", _share(stats.auto_accuracy)),
        ("defective garments passed automatically", str(stats.escapes)),
        ("line accuracy (a diversion counts as not right)", _share(stats.line_accuracy)),
        ("verdicts with a classifier error", str(stats.errors)),
        ("MQTT messages that broke the contract's schema", str(stats.invalid_messages)),
    ]
    review = stats.extra.get("review")
    if review:
        who = (
            "a simulated reviewer (deciding from the synthetic truth)"
            if review.get("simulated_reviewer")
            else "people"
        )
        rows.append(
            (
                "reviewed",
                f"{review['reviewed']} of {review['routed_to_people']} garments routed to people, by {who}",
            )
        )
        if review.get("agreement_rate") is not None:
            g = review["garments"]
            counts = (
                f"false positives {g['false_positive']}, false negatives {g['false_negative']}, "
                f"misclassified {g['misclassification']}, unanswered {g['unanswered']}"
            )
            rows.append(
                ("AI-reviewer agreement (review report)", f"{review['agreement_rate']:.1%}: {counts}")
            )
        if review.get("report"):
            rows.append(("weekly review report", f"`{review['report']}` (and JSON, charts)"))
    learning = ""
    if stats.extra.get("learning"):
        from seamline.demo.learning import learning_markdown

        learning = learning_markdown(stats.extra["learning"])
    return (
        "# Seamline demo summary\n\n"
        f"Detector `{settings.detector}`, classifier `{settings.classifier}`, "
        f"synthetic line seed {settings.seed}, "
        f"{settings.views} view(s).\n\n| | |\n|---|---|\n"
        + "".join(f"| {a} | {b} |\n" for a, b in rows)
        + learning
    )
