"""The taxonomy is configuration: 12 types + normal, four languages, rubrics; new types need no code."""

import textwrap

import pytest
import yaml

from seamline.config import load_config
from seamline.config.taxonomy import DEFAULT_TAXONOMY_PATH, LANGUAGES, default_taxonomy, load_taxonomy
from seamline.domain import Decision, Severity, expected_decision
from seamline.errors import ConfigError


def test_default_taxonomy_has_the_seed_types_and_six_more():
    taxonomy = default_taxonomy()
    assert len(taxonomy.types) == 12
    assert {"stain", "tear", "discoloration", "pilling", "hole", "missing_button"} <= set(taxonomy.type_ids)
    assert taxonomy.label_ids[-1] == "normal"
    for t in taxonomy.types:
        for language in LANGUAGES:
            assert t.names.get(language)
        for severity in Severity:
            assert t.severity.get(severity)


def test_adding_a_type_is_only_configuration(tmp_path):
    data = yaml.safe_load(DEFAULT_TAXONOMY_PATH.read_text())
    data["types"].append(
        {
            "id": "odor_mark",
            "names": {"en": "Odour mark", "ko": "냄새 자국", "zh": "异味痕迹", "ja": "臭い跡"},
            "description": "A sweat ring.",
            "severity": {"minor": "faint", "moderate": "clear", "severe": "strong"},
        }
    )
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    config_path = tmp_path / "seamline.yaml"
    config_path.write_text("taxonomy: taxonomy.yaml\n")
    taxonomy = load_config(config_path).load_taxonomy()
    assert taxonomy.type_ids[-1] == "odor_mark" and len(taxonomy.types) == 13


def test_inline_taxonomy(tmp_path):
    path = tmp_path / "seamline.yaml"
    path.write_text(
        textwrap.dedent(
            """
            taxonomy:
              types:
                - id: stain
                  names: {en: Stain, ko: 얼룩, zh: 污渍, ja: シミ}
                  description: A mark.
                  severity: {minor: small, moderate: medium, severe: large}
              normal:
                names: {en: Normal, ko: 정상, zh: 正常, ja: 正常}
                description: Intact.
            """
        )
    )
    assert load_config(path).load_taxonomy().type_ids == ("stain",)


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda d: d["types"].append(dict(d["types"][0])), "duplicate type ids: stain"),
        (lambda d: d["types"][0].update(id="Coffee Stain"), "snake_case"),
        (lambda d: d["types"][0]["names"].pop("ja"), "types.0.names.ja"),
        (lambda d: d["types"][1].update(colour="red"), "types.1.colour"),
        (lambda d: d.update(reject_at_severity="huge"), "reject_at_severity"),
    ],
)
def test_bad_taxonomies_are_refused(tmp_path, edit, fragment):
    data = yaml.safe_load(DEFAULT_TAXONOMY_PATH.read_text())
    edit(data)
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ConfigError) as err:
        load_taxonomy(path)
    assert fragment in str(err.value)


def test_expected_decision_rejects_from_the_threshold_up():
    assert expected_decision([], Severity.MODERATE) is Decision.PASS
    assert expected_decision([Severity.MINOR, Severity.MINOR], Severity.MODERATE) is Decision.PASS
    assert expected_decision([Severity.MINOR, Severity.MODERATE], Severity.MODERATE) is Decision.REJECT
    assert expected_decision([Severity.MODERATE], Severity.SEVERE) is Decision.PASS
