"""``cloud.learning``: the registry, the golden set, the gate's criteria, the retraining triggers and what the
worker trains. Every number the seed hard-coded is here, with the seed's value as the default."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from cloud.learning.registry import RegistryConfig
from seamline.config.base import StrictModel
from seamline.config.paths import ConfigPath


class GoldenConfig(StrictModel):
    """How `seamline golden freeze` samples verified garments, per stratum (defect type x severity)."""

    share: float = Field(
        default=0.15, gt=0, lt=1, title="Share", description="Share of each stratum's garments frozen."
    )
    min_per_stratum: int = Field(
        default=20,
        ge=1,
        title="Least per stratum",
        description="Take at least this many garments of a stratum (all it has, if fewer; the gate compares "
        "per class only with 20 or more). Never more than half a stratum, so training keeps some.",
    )
    max_per_stratum: int = Field(
        default=500, ge=1, title="Most per stratum", description="Cap on garments frozen per stratum."
    )


class TriggerConfig(StrictModel):
    """The seed's retraining triggers, as settings (the weekly report shows them; the worker acts on them)."""

    min_new_verified: int = Field(
        default=1000,
        ge=1,
        title="New verified labels",
        description="Retrain once this many verified labels arrived since the last job's export.",
    )
    max_audit_disagreement: float = Field(
        default=0.15,
        gt=0,
        le=1,
        title="Audit disagreement",
        description="Retrain when reviewers disagree with this share (or more) of automatic decisions, "
        "measured on audit samples only.",
    )
    min_audit_samples: int = Field(
        default=20,
        ge=1,
        title="Audit samples needed",
        description="The disagreement trigger needs at least this many decided audit samples.",
    )
    min_class_precision: float = Field(
        default=0.70,
        gt=0,
        le=1,
        title="Class precision",
        description="Retrain when a defect type's precision falls below this ...",
    )
    min_class_predictions: int = Field(
        default=20,
        ge=1,
        title="Predictions per class",
        description="... on at least this many of its predictions (one unlucky crop starts nothing).",
    )
    window_days: float = Field(
        default=7, gt=0, title="Window", description="Days of reviews the disagreement and precision read."
    )


class FloorsConfig(StrictModel):
    """Absolute floors a candidate must clear on the golden set, whatever the champion does."""

    detector_map50: float = Field(default=0.5, ge=0, le=1, title="Detector mAP50", description="mAP@0.5.")
    detector_recall: float = Field(
        default=0.8, ge=0, le=1, title="Detector recall", description="Recall at the operating threshold."
    )
    classifier_type_accuracy: float = Field(
        default=0.8, ge=0, le=1, title="Type accuracy", description="Classifier defect-type accuracy."
    )
    classifier_severity_agreement: float = Field(
        default=0.7, ge=0, le=1, title="Severity agreement", description="Classifier severity agreement."
    )


class GateConfig(StrictModel):
    """What `seamline gate` requires of a candidate against the champion."""

    floors: FloorsConfig = Field(default_factory=FloorsConfig, title="Floors", description="Absolute floors.")
    detector_threshold: float = Field(
        default=0.25,
        gt=0,
        lt=1,
        title="Detector operating threshold",
        description="Score at which recall and per-class recall are measured (the edge's score threshold).",
    )
    min_class_examples: int = Field(
        default=20,
        ge=1,
        title="Examples per class",
        description="A class is compared with the champion only with at least this many examples (and the "
        "routing replay only when each model automates at least this many).",
    )
    max_class_drop: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        title="Largest drop per class",
        description="Fail if the lower end of the paired bootstrap interval of (candidate - champion) on a "
        "class is below minus this.",
    )
    interval: float = Field(
        default=0.95, gt=0.5, lt=1, title="Interval", description="Bootstrap interval coverage."
    )
    bootstrap_resamples: int = Field(
        default=2000, ge=100, title="Bootstrap resamples", description="Paired resamples per comparison."
    )
    mcnemar_alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        title="McNemar level",
        description="The classifier fails if McNemar's exact test finds it worse overall at this level.",
    )
    routing_tolerance: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        title="Routing tolerance",
        description="Replaying the routing policy on the candidate's answers may lower the automatic "
        "decisions' accuracy by at most this (0: not at all).",
    )
    int8_max_drop: float = Field(
        default=0.01,
        ge=0,
        lt=1,
        title="int8 tolerance",
        description="A candidate detector that comes with an int8 model (detector.int8.onnx) fails if the "
        "int8 model's mAP50 or recall is more than this below the fp32 model's (`seamline gate int8`).",
    )
    detector_latency_ms: float = Field(
        default=250.0,
        gt=0,
        title="Detector latency budget",
        description="p95 milliseconds per image on ONNX Runtime, the edge's runtime, where the gate runs.",
    )
    classifier_latency_ms: float = Field(
        default=5000.0,
        gt=0,
        title="Classifier latency budget",
        description="p95 milliseconds per crop, greedy generation with transformers where the gate runs.",
    )
    recent_weeks: int = Field(
        default=4,
        ge=0,
        title="Recent weeks",
        description="Also judge on verified labels of the last weeks that the candidate did not train on "
        "(0: the golden set only).",
    )
    max_examples: int = Field(
        default=2000, ge=1, title="Most examples", description="Cap on examples per evaluation set."
    )


class LearnTrainConfig(StrictModel):
    """What the worker trains when a trigger fires (each resumes from its champion's weights)."""

    models: list[Literal["detector", "classifier"]] = Field(
        default_factory=lambda: ["detector", "classifier"],
        min_length=1,
        title="Models",
        description="Which models a job retrains.",
    )
    detector: dict[str, Any] = Field(
        default_factory=dict,
        title="Detector training",
        description="Settings of `seamline train detector` (e.g. steps, batch_size, lr); data and output "
        "are the job's.",
    )
    classifier: dict[str, Any] = Field(
        default_factory=dict,
        title="Classifier training",
        description="Settings of `seamline train classifier` (e.g. steps, prompt); data and output are the "
        "job's.",
    )

    @model_validator(mode="after")
    def _known_settings(self) -> LearnTrainConfig:
        for name, settings in (("detector", self.detector), ("classifier", self.classifier)):
            if not settings:
                continue
            for owned in ("data", "out_dir", "init", "base", "val_data"):
                if owned in settings:
                    raise ValueError(f"{name}.{owned} is set by each job (the export, the champion)")
            try:  # the trainer's own checks (they need the train extra)
                train_config(name, settings, data=".", out_dir=".")
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"{name}.{where}: {first['msg']}") from None
        return self


def train_config(model: str, settings: dict[str, Any], **job: Any) -> Any:
    """The trainer's settings for ``model``: the configured ``settings`` plus the job's data and output."""
    if model == "detector":
        from cloud.learning.detector_training import DetectorTrainConfig

        return DetectorTrainConfig.model_validate({**settings, **job})
    from cloud.learning.classifier_training import ClassifierTrainConfig

    return ClassifierTrainConfig.model_validate({**settings, **job})


class PromotionConfig(StrictModel):
    """What `seamline rollout report` recommends for a canary (promote / keep / roll back), and whether the
    learning worker acts on it."""

    min_audit_samples: int = Field(
        default=30,
        ge=1,
        title="Audit samples per arm",
        description="Each arm (champion, candidate) needs this many decided audit samples in the window "
        "before the report recommends anything but keep.",
    )
    max_accuracy_drop: float = Field(
        default=0.02,
        ge=0,
        le=1,
        title="Accuracy drop",
        description="Promote when the candidate's accuracy of automatic decisions is at least the "
        "champion's minus this; roll back when even its 95 % upper bound is below that.",
    )
    min_automatic_accuracy: float = Field(
        default=0.90,
        gt=0,
        le=1,
        title="Accuracy without a comparison",
        description="When the champion settles too few garments by itself to measure (fewer than "
        "min_audit_samples decided audit samples), the candidate is judged against this instead: roll back "
        "when its 95 % upper bound is below it, promote when its accuracy reaches it (the seed's 0.90).",
    )
    max_automation_drop: float = Field(
        default=0.05,
        ge=0,
        le=1,
        title="Automation drop",
        description="Promote only when the candidate's automated share is at least the champion's minus "
        "this.",
    )
    max_latency_ratio: float = Field(
        default=1.5,
        ge=1,
        title="Latency ratio",
        description="Roll back when the candidate's p95 classify time exceeds the champion's times this.",
    )
    max_late_increase: float = Field(
        default=0.01,
        ge=0,
        le=1,
        title="Late verdicts",
        description="Roll back when the candidate's share of verdicts decided after the garment's deadline "
        "exceeds the champion's by more than this.",
    )
    window_days: float = Field(
        default=7, gt=0, title="Window (days)", description="The report's window, back from now."
    )
    auto_promote: bool = Field(
        default=False,
        title="Act on it",
        description="`seamline learn run` promotes or rolls back a canary when the report says so. Off: "
        "people decide (`seamline rollout classifier promote|rollback`).",
    )


class LearningConfig(StrictModel):
    """``cloud.learning``: the learning loop."""

    registry: RegistryConfig = Field(
        default_factory=RegistryConfig, title="Registry", description="The MLflow model registry."
    )
    work_dir: ConfigPath | None = Field(
        default=None,
        title="Work folder",
        description="Golden sets, exports, training runs and gate reports (default: learning/ under the "
        "data folder).",
    )
    golden: GoldenConfig = Field(default_factory=GoldenConfig, title="Golden set", description="Sampling.")
    triggers: TriggerConfig = Field(
        default_factory=TriggerConfig, title="Triggers", description="When to retrain."
    )
    gate: GateConfig = Field(
        default_factory=GateConfig, title="Gate", description="What a candidate must do."
    )
    train: LearnTrainConfig = Field(
        default_factory=LearnTrainConfig, title="Training", description="What a job trains."
    )
    promotion: PromotionConfig = Field(
        default_factory=PromotionConfig,
        title="Promotion",
        description="How a canary's rollout report decides (and whether the worker acts on it).",
    )
    check_interval_s: float = Field(
        default=3600,
        gt=0,
        title="Check interval",
        description="Seconds between trigger checks of `seamline learn run` (without --once).",
    )
    stale_job_s: float = Field(
        default=900,
        gt=0,
        title="Stale job",
        description="A running job whose worker has not reported for this long is marked abandoned.",
    )
