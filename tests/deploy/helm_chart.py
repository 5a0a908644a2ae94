"""Lint and render a Helm chart offline with Helm's own SDK, for tests/deploy/test_helm.py.

Run with the deploy tools' interpreter (``helm_python`` lives only there), never imported by the tests:

    python tests/deploy/helm_chart.py REQUEST.json

The request names the chart, the release and a list of jobs; each job gives values files (merged in order, as
``helm -f a -f b`` does) and inline values, and asks for a strict lint, a render, or both. The answer, on
stdout, is one JSON object: for each job id ``{"lint": report | null, "manifests": {template: text} | null,
"error": "ErrorType: message" | null}``. A job that fails (a template's ``fail``, a schema violation) records
its error and the others still run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of successive values files: maps merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def job_values(job: dict[str, Any]) -> dict[str, Any]:
    import helm_python

    values: dict[str, Any] = {}
    for path in job.get("values_files", []):
        values = merge(values, helm_python.values_from_yaml(Path(path).read_text(encoding="utf-8")))
    return merge(values, job.get("values", {}))


def run_job(chart: Any, request: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    import helm_python

    result: dict[str, Any] = {"lint": None, "manifests": None, "error": None}
    try:
        values = job_values(job)
        if job.get("lint"):
            result["lint"] = helm_python.lint(
                request["chart"], values, strict=True, namespace=request["namespace"]
            )
        if job.get("render"):
            result["manifests"] = chart.render(
                values, name=request["release"], namespace=request["namespace"], is_install=True
            )
    except helm_python.HelmError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result


def main(request_path: str) -> None:
    import helm_python

    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    with helm_python.Chart.load(request["chart"]) as chart:
        answer = {job["id"]: run_job(chart, request, job) for job in request["jobs"]}
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
