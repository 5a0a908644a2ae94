from datetime import UTC, datetime

import pytest

from cloud.review.report import iso_week, week_label


def test_iso_weeks_start_on_monday_utc():
    assert iso_week("2026-W48") == datetime(2026, 11, 23, tzinfo=UTC)
    assert iso_week("2027-W01") == datetime(2027, 1, 4, tzinfo=UTC)
    assert week_label(iso_week("2026-W53")) == "2026-W53"


@pytest.mark.parametrize("text", ["2026-48", "W48", "2026-W99", "", "2025-W53", "2026-W00"])
def test_bad_weeks_are_refused(text):
    with pytest.raises(ValueError, match="week"):
        iso_week(text)


def test_export_window_times_are_compared_in_utc():
    from cloud.review.cli import _moment

    assert _moment("2026-11-28T09:00:00+09:00", "--since") == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
    assert _moment("2026-11-28", "--since") == datetime(2026, 11, 28, tzinfo=UTC)


def test_charts_drawn_in_parallel_threads_are_the_same_as_one_by_one():
    from concurrent.futures import ThreadPoolExecutor

    from cloud.review.charts import CHARTS, render_chart

    report = {
        "daily": [{"label": f"2026-11-{23 + i}", "reviews": i, "agreement_rate": 0.5} for i in range(7)],
        "trend": [
            {"label": f"2026-W{41 + i}", "reviews": 3 * i, "agreement_rate": None if i == 0 else 0.8}
            for i in range(8)
        ],
        "garments": {
            "agreement": 3,
            "false_positive": 2,
            "false_negative": 1,
            "misclassification": 1,
            "unanswered": 0,
        },
        "per_class": {"stain": {"predicted": 2, "actual": 1, "precision": 0.5, "recall": 1.0}},
    }
    alone = [render_chart(name, report) for name in CHARTS]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda name: render_chart(name, report), CHARTS * 3))
    assert together == alone * 3 and all(png[:4] == b"\x89PNG" for png in alone)
