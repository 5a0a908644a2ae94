"""Confidence from token log-probabilities: only the tokens of the type and severity values count."""

import math

import pytest

from cloud.classifiers.answer import field_confidence


def _tokens(*pairs):
    return [{"token": t, "logprob": lp} for t, lp in pairs]


def test_joint_probability_of_the_value_tokens():
    tokens = _tokens(
        ('{"type":"', 0.0),
        ("st", math.log(0.9)),
        ("ain", math.log(0.8)),
        ('","severity":"', 0.0),
        ("minor", math.log(0.5)),
        ('","decision":"pass","reason":"x"}', math.log(0.1)),
    )
    assert field_confidence(tokens) == pytest.approx(0.9 * 0.8 * 0.5)


def test_tokens_straddling_the_value_count():
    tokens = _tokens(
        ('{"type":"te', math.log(0.5)), ('ar","severity":"', math.log(0.5)), ('severe"}', math.log(0.25))
    )
    assert field_confidence(tokens) == pytest.approx(0.5 * 0.5 * 0.25)


def test_broken_characters_in_free_text_do_not_shift_the_values():
    # a token holding half of a multi-byte character shows as "" or U+FFFD;
    # the enum values are found all the same
    tokens = _tokens(
        ('{"crop_id":"a","type":"hole","severity":"minor","reason":"', 0.0),
        ("", -1.0),
        ("\ufffd", -1.0),
        ('"},{"crop_id":"b","type":"', 0.0),
        ("tear", math.log(0.6)),
        ('","severity":"', 0.0),
        ("severe", math.log(0.5)),
        ('"}', 0.0),
    )
    assert field_confidence(tokens, after='"crop_id":"b"') == pytest.approx(0.6 * 0.5)
    assert field_confidence(tokens, after='"crop_id":"a"') == pytest.approx(1.0)


def test_missing_fields_give_no_signal():
    assert field_confidence(_tokens(('{"type":"tear"}', 0.0))) is None  # no severity
    assert (
        field_confidence(_tokens(('{"type":"tear","severity":"minor"}', 0.0)), after='"crop_id":"x"') is None
    )
