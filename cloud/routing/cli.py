"""``seamline routing calibrate`` and ``seamline routing replay``: the routing policy against the audit store.

``calibrate`` chooses the lowest ``auto_threshold`` certified to give automatic decisions of a target accuracy
(the method: cloud/routing/calibrate.py) and writes policy.yaml, report.json, report.md and curve.png;
``replay`` re-decides every recorded verdict under another policy file and compares the two. Both read the
window's garments once through cloud/routing/replay.py, so they draw the same curve.

Exit codes: 0 (a policy written, or the current one kept with the reason on stdout), 2 bad input (no cloud
section, arguments out of range, an empty window, a policy file that does not validate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import typer

from cloud.routing.calibrate import DEFAULT_MIN_SAMPLES, DEFAULT_STEP
from cloud.routing.policy import RoutingPolicyConfig
from cloud.routing.replay import RecordedGarment, RoutingPoint
from cloud.routing.report import (
    Window,
    calibration_markdown,
    calibration_report,
    policy_yaml,
    print_comparison,
    replay_markdown,
    replay_report,
    write_report,
)
from seamline.clock import utcnow
from seamline.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

app = typer.Typer(
    help="The routing policy: calibrate its automatic threshold to a target accuracy, replay verdicts.",
    no_args_is_help=True,
)

CONFIG = typer.Option(
    ...,
    "--config",
    "-c",
    help="Seamline YAML; its cloud: section names the audit store and the policy in force.",
)
SINCE = typer.Option(
    None,
    "--since",
    help="Only garments classified at or after this ISO date or date-time (UTC without offset).",
)
LINE = typer.Option(None, "--line", help="Only this line's garments (line_id).")
CONFIDENCE = typer.Option(0.95, "--confidence", help="Probability that the accuracy bound holds, in (0, 1).")
STEP = typer.Option(DEFAULT_STEP, "--step", help="Candidate grid: one threshold per this share of garments.")


@app.command("calibrate")
def calibrate_command(
    config: Path = CONFIG,
    target_accuracy: float = typer.Option(
        ..., "--target-accuracy", help="Accuracy the automatic decisions must reach, in (0, 1), e.g. 0.97."
    ),
    confidence: float = CONFIDENCE,
    since: str | None = SINCE,
    line: str | None = LINE,
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for policy.yaml and the report (default ./calibration-YYYY-MM-DD)."
    ),
    min_samples: int = typer.Option(
        DEFAULT_MIN_SAMPLES, "--min-samples", help="Fewer verified garments than this: keep the policy."
    ),
    step: float = STEP,
) -> None:
    """Choose the lowest auto_threshold whose automatic decisions reach the target accuracy, certified."""
    from cloud.routing.calibrate import calibrate, calibrated_policy, check_arguments, per_decision

    check_arguments(target=target_accuracy, confidence=confidence, min_samples=min_samples, step=step)
    window = _open_window(config, since, line)
    current = window.policy
    result = calibrate(
        window.points,
        current,
        target=target_accuracy,
        confidence=confidence,
        min_samples=min_samples,
        step=step,
    )
    decisions = per_decision(window.points, current, result, min_samples=min_samples, step=step)
    today = utcnow().date()
    new_policy = calibrated_policy(result, today)
    out = out or Path(f"calibration-{today:%Y-%m-%d}")
    out.mkdir(parents=True, exist_ok=True)
    report = calibration_report(window, result, decisions, new_policy, step)
    if new_policy is not None:
        (out / "policy.yaml").write_text(policy_yaml(new_policy, result, today), encoding="utf-8")
    else:  # a folder reused from an earlier run must not offer its policy as this run's
        (out / "policy.yaml").unlink(missing_ok=True)
    write_report(out, report, calibration_markdown(report))
    if new_policy is None:
        typer.echo(
            f"kept policy {current.version} (auto_threshold {current.auto_threshold:g}): {result.reason}"
        )
    else:
        typer.echo(
            f"calibrated: auto_threshold {current.auto_threshold:g} -> {new_policy.auto_threshold:g}, "
            f"policy {new_policy.version}: {result.reason}; wrote {out / 'policy.yaml'}"
        )
    typer.echo(f"report: {out / 'report.md'}")


@app.command("replay")
def replay_command(
    config: Path = CONFIG,
    policy: Path = typer.Option(
        ..., "--policy", help="YAML with the other policy: a routing: mapping, a cloud: section, or bare."
    ),
    confidence: float = CONFIDENCE,
    since: str | None = SINCE,
    line: str | None = LINE,
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Also write report.json, report.md, curve.png."
    ),
    step: float = STEP,
) -> None:
    """Re-decide every recorded verdict in the window under another policy, and compare the two."""
    from cloud.routing.calibrate import check_arguments

    check_arguments(confidence=confidence, step=step)
    other = read_policy_file(policy)
    recorded: list[RoutingPoint] = []
    window = _open_window(config, since, line, other=other, tap=recorded.append)
    report = replay_report(window, recorded, other, confidence, step)
    print_comparison(report)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_report(out, report, replay_markdown(report))
        typer.echo(f"report: {out / 'report.md'}")


def read_policy_file(path: Path) -> RoutingPolicyConfig:
    """A RoutingPolicyConfig from ``path``: a ``routing:`` mapping, a ``cloud:`` section with one, or bare."""
    from seamline.config.loader import load_yaml_model, parse_yaml, validate_section

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    data, _ = parse_yaml(text, str(path))
    if isinstance(data, dict) and isinstance(data.get("cloud"), dict) and "routing" in data["cloud"]:
        return validate_section(path, "cloud.routing", data["cloud"]["routing"] or {}, RoutingPolicyConfig)
    if isinstance(data, dict) and set(data) == {"routing"}:
        return validate_section(path, "routing", data["routing"] or {}, RoutingPolicyConfig)
    return load_yaml_model(path, RoutingPolicyConfig, text=text)


# the window: every garment of the audit store in --since / --line, replayed ---------------------------------


def _open_window(
    config: Path,
    since: str | None,
    line: str | None,
    *,
    other: RoutingPolicyConfig | None = None,
    tap: Callable[[RoutingPoint], None] | None = None,
) -> Window:
    # The config layer sits above routing (tests/unit/test_import_boundaries.py): this entry point is the one
    # module here that reads it, lazily, as cloud/cli.py does.
    from sqlalchemy.engine import make_url

    from cloud.config import CloudConfig
    from cloud.routing.policy import RoutingPolicy
    from cloud.routing.replay import recorded_garments, recorded_point, routing_points
    from cloud.storage.audit import AuditStore
    from seamline.config.models import load_config, load_section

    moment = _moment(since)
    seamline_config = load_config(config)
    if seamline_config.cloud is None:
        raise ConfigError(
            f"{config}: no cloud: section; the routing commands read the audit store and the routing policy "
            "that section names"
        )
    cloud = load_section(config, seamline_config, "cloud", CloudConfig)
    url = cloud.audit_store_url(seamline_config.storage.data_dir)
    shown = make_url(url).render_as_string(hide_password=True)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise InputError(f"no audit store at {shown} (cloud.audit_url, or storage.data_dir of {config})")
    taxonomy = seamline_config.load_taxonomy()
    replaying = other or cloud.routing
    policy = RoutingPolicy(replaying, reject_at=taxonomy.reject_at_severity, normal_id=taxonomy.normal.id)
    store = AuditStore.from_url(url, migrate=cloud.migrate_on_start)

    def tapped(garments: Iterable[RecordedGarment]) -> Iterator[RecordedGarment]:
        for garment in garments:
            if tap is not None:
                tap(recorded_point(garment))
            yield garment

    try:
        points = routing_points(tapped(recorded_garments(store.engine, since=moment, line=line)), policy)
    except ValueError as exc:
        raise InputError(f"{shown}: {exc}") from exc
    finally:
        store.engine.dispose()
    if not points:
        where = "".join(
            [f" since {moment.isoformat()}" if moment else "", f" on line {line!r}" if line else ""]
        )
        raise InputError(f"the audit store {shown} holds no cloud verdicts{where}: nothing to replay")
    return Window(config, shown, moment, line, cloud.routing, points)


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--since: {text!r} is not an ISO date (2026-12-01) or date-time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


# reports -------------------------------------------------------------------------------------------------
