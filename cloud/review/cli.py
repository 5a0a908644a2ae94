"""``seamline review ...`` (the console, reviewer accounts, exports) and ``seamline report weekly``."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import typer

from seamline.clock import utcnow

app = typer.Typer(
    help="The human review console, reviewer accounts and verified-data exports.", no_args_is_help=True
)
report_app = typer.Typer(help="Reports from the review store.", no_args_is_help=True)

CONFIG = typer.Option(
    ..., "--config", "-c", help="Seamline YAML (its cloud: section names the audit store and crop store)."
)


def _load(config: Path):  # type: ignore[no-untyped-def]
    from cloud.config import CloudConfig
    from cloud.review.config import ReviewConfig
    from seamline.config.models import load_config, load_section

    seamline_config = load_config(config)
    cloud = load_section(config, seamline_config, "cloud", CloudConfig)
    review = load_section(config, seamline_config, "review", ReviewConfig)
    return seamline_config, cloud, review


def _store(config: Path):  # type: ignore[no-untyped-def]
    from cloud.storage.audit import AuditStore

    seamline_config, cloud, _ = _load(config)
    data_dir = seamline_config.storage.data_dir
    return (
        seamline_config,
        cloud,
        AuditStore.from_url(cloud.audit_store_url(data_dir), migrate=cloud.migrate_on_start),
    )


@app.command("serve")
def serve(config: Path = CONFIG, port: int | None = typer.Option(None, help="Override review.port.")) -> None:
    """Run the review console until SIGTERM/SIGINT."""
    from cloud.review.console.server import ConsoleServer
    from cloud.review.service import ReviewService
    from seamline.logs import setup_logging

    seamline_config, cloud, review = _load(config)
    if port is not None:
        review = review.model_copy(update={"port": port})
    setup_logging(seamline_config.logging.level, seamline_config.logging.json_lines)
    service = ReviewService(seamline_config, cloud, review)
    server = ConsoleServer(
        service,
        host=review.host,
        port=review.port,
        on_ready=lambda url: typer.echo(f"review console listening on {url}"),
    )
    server.run()


def _password(password_env: str | None) -> str:
    if password_env:
        value = os.environ.get(password_env)
        if not value:
            raise typer.BadParameter(
                f"environment variable {password_env} is not set", param_hint="--password-env"
            )
        return value
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@app.command("add-reviewer")
def add_reviewer(
    reviewer_id: str = typer.Argument(..., help="Login name: a-z, 0-9, '.', '_', '-'."),
    config: Path = CONFIG,
    name: str | None = typer.Option(None, help="Display name."),
    password_env: str | None = typer.Option(
        None, help="Read the password from this environment variable (else prompt, or stdin)."
    ),
    role: str = typer.Option(
        "reviewer", help="reviewer (reviews) or admin (also reviewer accounts, reports, exports)."
    ),
) -> None:
    """Create a reviewer account (the first admin is made here; admins add the others in the console)."""
    from cloud.review.auth import Reviewers

    _, _, store = _store(config)
    Reviewers(store.engine).add(reviewer_id, _password(password_env), name, role)  # type: ignore[arg-type]
    typer.echo(f"{role} {reviewer_id} added")


@app.command("set-role")
def set_role(
    reviewer_id: str = typer.Argument(...),
    role: str = typer.Argument(..., help="reviewer or admin."),
    config: Path = CONFIG,
) -> None:
    """Make a reviewer an admin, or an admin a reviewer."""
    from cloud.review.auth import Reviewers

    _, _, store = _store(config)
    Reviewers(store.engine).set_role(reviewer_id, role)  # type: ignore[arg-type]
    typer.echo(f"{reviewer_id} is now {role}")


@app.command("set-password")
def set_password(
    reviewer_id: str = typer.Argument(...),
    config: Path = CONFIG,
    password_env: str | None = typer.Option(None, help="Read the password from this environment variable."),
) -> None:
    """Change a reviewer's password (ends their sessions)."""
    from cloud.review.auth import Reviewers

    _, _, store = _store(config)
    Reviewers(store.engine).set_password(reviewer_id, _password(password_env))
    typer.echo(f"password of {reviewer_id} changed")


@app.command("deactivate")
def deactivate(
    reviewer_id: str = typer.Argument(...),
    config: Path = CONFIG,
    undo: bool = typer.Option(False, "--undo", help="Re-activate instead."),
) -> None:
    """Disable a reviewer account (ends its sessions at once); --undo enables it again."""
    from cloud.review.auth import Reviewers

    _, _, store = _store(config)
    Reviewers(store.engine).set_active(reviewer_id, undo)
    typer.echo(f"reviewer {reviewer_id} {'activated' if undo else 'deactivated'}")


@app.command("export")
def export(
    config: Path = CONFIG,
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (images/ and the format's files)."),
    fmt: str = typer.Option(
        "jsonl", "--format", "-f", help="coco (detector), jsonl (classifier) or labelstudio."
    ),
    since: str | None = typer.Option(None, help="Only labels verified on or after this ISO date/time."),
    until: str | None = typer.Option(None, help="Only labels verified before this ISO date/time."),
) -> None:
    """Export verified labels with their crops."""
    from dataclasses import asdict

    from cloud.review.export import export_verified
    from cloud.storage.crop_store import crop_store_from_url

    seamline_config, cloud, store = _store(config)
    crop_store = crop_store_from_url(cloud.crop_store, base=seamline_config.storage.data_dir / "cloud")
    summary = export_verified(
        store.engine,
        crop_store,
        seamline_config.load_taxonomy(),
        out,
        fmt,
        since=_moment(since, "--since"),
        until=_moment(until, "--until"),
    )
    typer.echo(json.dumps(asdict(summary)))


@report_app.command("weekly")
def weekly(
    config: Path = CONFIG,
    week: str | None = typer.Option(None, help="ISO week, e.g. 2026-W48 (default: the current week)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Also write report.json, report.md and the charts here."
    ),
) -> None:
    """The weekly review report: agreement, error breakdown, per-class precision/recall, patterns, trend."""
    from cloud.review.report import iso_week, report_markdown, weekly_report

    seamline_config, cloud, store = _store(config)
    try:
        start = iso_week(week or utcnow().strftime("%G-W%V"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--week") from exc
    report = weekly_report(
        store.engine, start, seamline_config.load_taxonomy(), triggers=cloud.learning.triggers
    )
    if out is not None:
        from cloud.review.charts import CHARTS, render_chart

        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (out / "report.md").write_text(report_markdown(report), encoding="utf-8")
        for name in CHARTS:
            (out / f"{name}.png").write_bytes(render_chart(name, report))
        typer.echo(f"wrote {out}/report.json, report.md and {len(CHARTS)} charts", err=True)
    typer.echo(json.dumps(report, indent=2))


def _moment(text: str | None, hint: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO date/time", param_hint=hint) from exc
    # SQLite keeps times without their offset (as UTC), so compare in UTC everywhere
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
