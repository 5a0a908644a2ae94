"""The classifier's answer for one region: its JSON Schema (from the taxonomy) and its parsed form.

The schema is what vLLM's structured outputs enforce, so every answer parses; its enums come from the
taxonomy configuration. Field order is deliberate: ``type`` and ``severity`` come first so their tokens are
chosen before the free-text ``reason`` can steer them, and their token probabilities are the confidence the
routing policy uses.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from seamline.config.taxonomy import Taxonomy
from seamline.domain import Decision, Severity, expected_decision

NO_SEVERITY = "none"
REASON_MAX_CHARS = 160
NORMAL_REASON = "No defect: the fabric is intact."


def answer_schema(taxonomy: Taxonomy) -> dict[str, Any]:
    """JSON Schema of one region's answer.

    Two shapes, so the grammar itself pairs type and severity: a defect type takes one of the three
    severities, ``normal`` takes ``"none"``. (A single object with both enums let a random-weight model answer
    a defect with no severity, which the parser then had to refuse.)
    """
    normal = taxonomy.normal.id
    defects = [label for label in taxonomy.label_ids if label != normal]
    return {
        "anyOf": [
            _region_shape(defects, [s.value for s in Severity]),
            _region_shape([normal], [NO_SEVERITY]),
        ]
    }


def _region_shape(types: list[str], severities: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": types},
            "severity": {"type": "string", "enum": severities},
            "decision": {"type": "string", "enum": [d.value for d in Decision]},
            "reason": {"type": "string", "minLength": 1, "maxLength": REASON_MAX_CHARS},
        },
        "required": ["type", "severity", "decision", "reason"],
        "additionalProperties": False,
    }


class AnswerError(ValueError):
    """The model's text is not a valid answer.

    This should not happen with structured outputs, but an answer is never trusted blindly.
    """


@dataclass(frozen=True)
class RegionAnswer:
    """One parsed answer."""

    type: str
    severity: Severity | None
    decision: Decision
    reason: str


def parse_answer(text: str, taxonomy: Taxonomy) -> RegionAnswer:
    """Parse and check an answer against the taxonomy; AnswerError says what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnswerError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AnswerError("not a JSON object")
    label = data.get("type")
    if label not in taxonomy.label_ids:
        raise AnswerError(f"type {label!r} is not in the taxonomy")
    severity_text = data.get("severity")
    if severity_text == NO_SEVERITY:
        severity = None
    else:
        try:
            severity = Severity(severity_text)
        except ValueError:
            raise AnswerError(
                f"severity {severity_text!r} is not one of none/minor/moderate/severe"
            ) from None
    if label == taxonomy.normal.id:
        severity = None  # "normal" carries no severity whatever the model wrote
    elif severity is None:
        raise AnswerError(f"type {label!r} needs a severity")
    try:
        decision = Decision(data.get("decision"))
    except ValueError:
        raise AnswerError(f"decision {data.get('decision')!r} is not pass/review/reject") from None
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise AnswerError("reason is missing")
    return RegionAnswer(label, severity, decision, reason.strip()[:REASON_MAX_CHARS])


def garment_answer_schema(taxonomy: Taxonomy, crop_ids: list[str]) -> dict[str, Any]:
    """JSON Schema of a multi-view answer: an object with exactly one region answer per crop id, in order.

    Keyed by crop id (not a list) so the grammar itself guarantees every crop is answered exactly once.
    """
    region = answer_schema(taxonomy)
    return {
        "type": "object",
        "properties": {
            "regions": {
                "type": "object",
                "properties": {crop_id: region for crop_id in crop_ids},
                "required": list(crop_ids),
                "additionalProperties": False,
            }
        },
        "required": ["regions"],
        "additionalProperties": False,
    }


def target_for(taxonomy: Taxonomy, type_id: str, severity: str | None) -> dict[str, str]:
    """The answer a correct classifier gives for a crop of ``type_id`` at ``severity``.

    Used as training targets and in exports.
    """
    if type_id == taxonomy.normal.id or severity in (None, NO_SEVERITY):
        return {
            "type": taxonomy.normal.id,
            "severity": NO_SEVERITY,
            "decision": Decision.PASS.value,
            "reason": NORMAL_REASON,
        }
    level = Severity(severity)
    decision = expected_decision([level], taxonomy.reject_at_severity)
    name = taxonomy.type(type_id).names.en
    return {
        "type": type_id,
        "severity": level.value,
        "decision": decision.value,
        "reason": f"{name}, {level.value}.",
    }


_FIELD = r'"{name}"\s*:\s*"(?P<value>[^"]*)"'


def field_confidence(
    tokens: list[dict[str, Any]], fields: tuple[str, ...] = ("type", "severity"), *, after: str | None = None
) -> float | None:
    """Joint probability of the tokens that spell the values of ``fields`` (the first ones after ``after``).

    ``tokens`` is the OpenAI ``logprobs.content`` list. Positions are taken in the text the tokens themselves
    spell, not in the message content: a model can emit a token holding part of a multi-byte character, which
    the content shows as U+FFFD, but the JSON skeleton and the enum values around it are ASCII and line up
    exactly.
    """
    text = "".join(token.get("token", "") for token in tokens)
    begin = 0
    if after is not None:
        begin = text.find(after)
        if begin < 0:
            return None
    spans = []
    for name in fields:
        match = re.compile(_FIELD.format(name=name)).search(text, begin)
        if match is None:
            return None
        spans.append(match.span("value"))
    total, position, used = 0.0, 0, False
    for token in tokens:
        piece = token.get("token", "")
        start, end = position, position + len(piece)
        position = end
        if any(start < s_end and end > s_start for s_start, s_end in spans):
            logprob = token.get("logprob")
            if logprob is None or not math.isfinite(logprob):
                return None
            total += logprob
            used = True
    return math.exp(total) if used else None
