"""``cloud.learning``: the seed's triggers as settings, and training settings checked when the file loads."""

import pytest
from pydantic import ValidationError

from cloud.learning.config import LearningConfig, TriggerConfig
from cloud.learning.triggers import retrain_reasons


def _report(agreement=None, decided=0, per_class=None):
    return {
        "automatic": {"agreement": agreement, "audit_samples_decided": decided},
        "per_class": per_class or {},
    }


def test_the_defaults_are_the_seeds_triggers():
    cfg = TriggerConfig()
    assert (cfg.min_new_verified, cfg.max_audit_disagreement, cfg.min_class_precision) == (1000, 0.15, 0.70)
    assert retrain_reasons(_report(), cfg, 999) == []
    assert retrain_reasons(_report(), cfg, 1000) == ["1000 new verified labels (>= 1000)"]


def test_disagreement_reads_audit_samples_and_needs_enough_of_them():
    cfg = TriggerConfig(min_audit_samples=20)
    assert retrain_reasons(_report(agreement=0.5, decided=19), cfg, 0) == []
    assert retrain_reasons(_report(agreement=0.8, decided=40), cfg, 0) == [
        "disagreement 0.20 on 40 audit samples (>= 0.15)"
    ]
    loose = TriggerConfig(max_audit_disagreement=0.25)
    assert retrain_reasons(_report(agreement=0.8, decided=40), loose, 0) == []


def test_a_class_precision_counts_with_enough_predictions_only():
    per_class = {
        "hole": {"predicted": 25, "precision": 0.6},
        "stain": {"predicted": 5, "precision": 0.1},
        "tear": {"predicted": 30, "precision": None},
    }
    assert retrain_reasons(_report(per_class=per_class), TriggerConfig(), 0) == [
        "hole precision 0.60 (< 0.7 on 25 predictions)"
    ]


def test_training_settings_are_the_trainers_and_the_job_owns_data_and_start():
    LearningConfig.model_validate({"train": {"detector": {"steps": 10, "class_agnostic": True}}})
    with pytest.raises(ValidationError, match=r"detector\.steps: Input should be greater than or equal to 1"):
        LearningConfig.model_validate({"train": {"detector": {"steps": 0}}})
    with pytest.raises(ValidationError, match=r"classifier\.base is set by each job"):
        LearningConfig.model_validate({"train": {"classifier": {"base": "tiny"}}})
    with pytest.raises(ValidationError, match="models"):
        LearningConfig.model_validate({"train": {"models": ["segmenter"]}})
