"""Clopper-Pearson bounds in pure Python agree with SciPy's beta quantiles (the textbook definition)."""

import pytest
from scipy.stats import beta

from cloud.routing.bounds import clopper_pearson, lower_bound, upper_bound


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (97, 100), (950, 1000), (4900, 5000), (1, 1)])
def test_the_exact_interval_matches_the_beta_quantiles(k, n):
    low, high = clopper_pearson(k, n, 0.95)
    assert low == pytest.approx(beta.ppf(0.025, k, n - k + 1) if k else 0.0, abs=1e-9)
    assert high == pytest.approx(beta.ppf(0.975, k + 1, n - k) if k < n else 1.0, abs=1e-9)
    assert lower_bound(k, n, 0.95) == pytest.approx(beta.ppf(0.05, k, n - k + 1) if k else 0.0, abs=1e-9)
    assert upper_bound(k, n, 0.9) == pytest.approx(beta.ppf(0.9, k + 1, n - k) if k < n else 1.0, abs=1e-9)


def test_nothing_sampled_says_nothing_and_bad_counts_are_refused():
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        clopper_pearson(5, 3)
    with pytest.raises(ValueError, match="confidence"):
        lower_bound(1, 2, 1.0)
