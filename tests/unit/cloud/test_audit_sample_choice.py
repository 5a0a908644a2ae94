"""Audit sampling by a hash of the garment id: the share holds like a fair coin's, per line, reproducibly."""

import math

import pytest

from cloud.routing.audit import AuditSamplingConfig, draw, sampled


@pytest.mark.parametrize("share", [0.01, 0.02, 0.1, 0.5])
def test_the_share_holds_within_a_binomial_bound(share):
    n = 5000
    hits = sum(sampled(f"site1-line1-st1-{i:08d}", share) for i in range(n))
    sd = math.sqrt(n * share * (1 - share))
    assert abs(hits - n * share) <= 4 * sd, (hits, n * share)  # 4 sigma: fails about once in 16,000 runs


def test_the_choice_is_fixed_by_the_id_and_edges_are_never_or_always():
    ids = [f"g{i}" for i in range(1000)]
    assert [sampled(i, 0.3) for i in ids] == [sampled(i, 0.3) for i in ids]  # every replica, every replay
    assert not any(sampled(i, 0.0) for i in ids) and all(sampled(i, 1.0) for i in ids)
    assert all(0 <= draw(i) < 1 for i in ids)
    # a smaller share picks a subset of a larger one (raising the share adds samples, never swaps them)
    assert {i for i in ids if sampled(i, 0.05)} <= {i for i in ids if sampled(i, 0.2)}


def test_a_line_can_have_its_own_share():
    config = AuditSamplingConfig.model_validate({"auto_share": 0.02, "auto_share_by_line": {"line9": 0.5}})
    assert config.share_for("line1") == 0.02 and config.share_for("line9") == 0.5
    with pytest.raises(ValueError, match="line9: a share is between 0 and 1"):
        AuditSamplingConfig.model_validate({"auto_share_by_line": {"line9": 1.5}})
