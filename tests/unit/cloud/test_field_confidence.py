"""Confidence from token log-probabilities: only the tokens of the type and severity values count."""

import math

from cloud.classifiers.vllm_backend import field_confidence


def _tokens(*pairs):
    return [{"token": t, "logprob": lp} for t, lp in pairs]


def test_joint_probability_of_the_value_tokens():
    content = '{"type":"stain","severity":"minor","decision":"pass","reason":"x"}'
    tokens = _tokens(
        ('{"type":"', 0.0), ("st", math.log(0.9)), ("ain", math.log(0.8)), ('","severity":"', 0.0), ("minor", math.log(0.5)),
        ('","decision":"pass","reason":"x"}', math.log(0.1)),
    )
    assert field_confidence(content, tokens) == pytest_approx(0.9 * 0.8 * 0.5)


def test_tokens_straddling_the_value_count():
    content = '{"type":"tear","severity":"severe"}'
    tokens = _tokens(('{"type":"te', math.log(0.5)), ('ar","severity":"', math.log(0.5)), ('severe"}', math.log(0.25)))
    assert field_confidence(content, tokens) == pytest_approx(0.5 * 0.5 * 0.25)


def test_misaligned_tokens_give_no_signal():
    content = '{"type":"tear","severity":"severe"}'
    assert field_confidence(content, _tokens(("{", 0.0))) is None
    assert field_confidence('{"type":"tear"}', _tokens(('{"type":"tear"}', 0.0))) is None  # no severity field


def pytest_approx(value):
    import pytest

    return pytest.approx(value, rel=1e-9)
