from datetime import UTC, datetime

import pytest

from cloud.review.report import iso_week, week_label


def test_iso_weeks_start_on_monday_utc():
    assert iso_week("2026-W48") == datetime(2026, 11, 23, tzinfo=UTC)
    assert iso_week("2027-W01") == datetime(2027, 1, 4, tzinfo=UTC)
    assert week_label(iso_week("2026-W53")) == "2026-W53"


@pytest.mark.parametrize("text", ["2026-48", "W48", "2026-W99", ""])
def test_bad_weeks_are_refused(text):
    with pytest.raises(ValueError, match="week"):
        iso_week(text)
