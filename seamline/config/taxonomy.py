"""The defect taxonomy: configuration, not code.

The default (``taxonomy.yaml`` beside this file) holds 12 defect types plus ``normal``; a site can point
``taxonomy.path`` at its own file or write the types inline. Adding a type needs no code change: prompts,
schema enums, the console and reports read the list from here.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from seamline.config.base import StrictModel
from seamline.domain import Severity

DEFAULT_TAXONOMY_PATH = Path(__file__).with_name("taxonomy.yaml")
LANGUAGES = ("en", "ko", "zh", "ja")
Language = Literal["en", "ko", "zh", "ja"]
_TYPE_ID = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


class LocalizedNames(StrictModel):
    """Display names of one type in the operator languages Seamline ships prompts for."""

    en: str = Field(title="English name", min_length=1)
    ko: str = Field(title="Korean name", min_length=1)
    zh: str = Field(title="Chinese name", min_length=1)
    ja: str = Field(title="Japanese name", min_length=1)

    def get(self, language: Language) -> str:
        """The name in ``language``."""
        return getattr(self, language)


class SeverityRubric(StrictModel):
    """What minor, moderate and severe mean for one defect type (goes into the prompt and the console)."""

    minor: str = Field(title="Minor", description="When this defect counts as minor.", min_length=1)
    moderate: str = Field(title="Moderate", description="When it counts as moderate.", min_length=1)
    severe: str = Field(title="Severe", description="When it counts as severe.", min_length=1)

    def get(self, severity: Severity) -> str:
        """The rubric text for ``severity``."""
        return getattr(self, severity.value)


class DefectType(StrictModel):
    """One defect type."""

    id: str = Field(
        title="Type id",
        description="Stable lowercase snake_case key used in verdicts, training data and metrics.",
    )
    names: LocalizedNames = Field(title="Names", description="Display names per language.")
    description: str = Field(
        title="Prompt description",
        description="How the type looks; the classifier's prompt quotes it.",
        min_length=1,
    )
    severity: SeverityRubric = Field(title="Severity rubric", description="Minor / moderate / severe.")

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not _TYPE_ID.match(value):
            raise ValueError(f"type id {value!r} must be lowercase snake_case (a-z, 0-9, _), 1-48 chars")
        return value


class NormalClass(StrictModel):
    """The 'no defect' class the classifier may answer."""

    id: str = Field(default="normal", title="Id", description="Key of the no-defect class.")
    names: LocalizedNames = Field(title="Names", description="Display names per language.")
    description: str = Field(title="Prompt description", description="What counts as normal.", min_length=1)


class Taxonomy(StrictModel):
    """The defect types Seamline detects and classifies."""

    schema_version: int = Field(
        default=1, title="Schema version", description="Taxonomy file format version."
    )
    reject_at_severity: Severity = Field(
        default=Severity.MODERATE,
        title="Reject at severity",
        description="The smallest severity that makes a garment unsellable; it sets the synthetic truth and "
        "what an automatic reject needs.",
    )
    types: list[DefectType] = Field(title="Defect types", description="The defect types, in a stable order.")
    normal: NormalClass = Field(title="Normal class", description="The no-defect class.")

    @model_validator(mode="after")
    def _unique_ids(self) -> Taxonomy:
        ids = [t.id for t in self.types]
        if not ids:
            raise ValueError("a taxonomy needs at least one defect type")
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate type ids: {', '.join(duplicates)}")
        if self.normal.id in ids:
            raise ValueError(f"the normal class id {self.normal.id!r} is also a defect type id")
        return self

    @cached_property
    def type_ids(self) -> tuple[str, ...]:
        """Defect type ids in taxonomy order (COCO category ids are this index + 1)."""
        return tuple(t.id for t in self.types)

    @cached_property
    def label_ids(self) -> tuple[str, ...]:
        """Every label the classifier may answer: the defect types, then ``normal``."""
        return (*self.type_ids, self.normal.id)

    def type(self, type_id: str) -> DefectType:
        """The defect type with id ``type_id``; KeyError if unknown."""
        for t in self.types:
            if t.id == type_id:
                return t
        raise KeyError(type_id)


def load_taxonomy(path: Path | str = DEFAULT_TAXONOMY_PATH) -> Taxonomy:
    """Load and validate a taxonomy YAML file.

    Errors name the key and line; see ``seamline.config.loader``.
    """
    from seamline.config.loader import load_yaml_model

    return load_yaml_model(Path(path), Taxonomy)


def default_taxonomy() -> Taxonomy:
    """The taxonomy shipped with Seamline."""
    return load_taxonomy(DEFAULT_TAXONOMY_PATH)
