"""The ``seamline`` command line: one entry point, a sub-command per job.

Exit codes: 0 success; 1 the job ran and failed; 2 bad input (configuration, arguments, data).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from seamline import envs
from seamline.children import StopRequested, stop_on_signals
from seamline.errors import SeamlineError
from seamline.logs import setup_logging

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="seamline",
    help="Human-in-the-loop visual inspection for production and returns lines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("validate-config")
def validate_config(
    file: Path = typer.Argument(..., help="The Seamline YAML configuration file to check."),
) -> None:
    """Check a configuration file; print each invalid key with its line, exit 2 if any."""
    from edge.config import EdgeConfig
    from seamline.config import load_config
    from seamline.config.models import load_section

    config = load_config(file)
    taxonomy = config.load_taxonomy()
    if config.edge is not None:
        load_section(file, config, "edge", EdgeConfig)
    if config.cloud is not None:
        from cloud.config import CloudConfig

        load_section(file, config, "cloud", CloudConfig)
    if config.review is not None:
        from cloud.review.config import ReviewConfig

        load_section(file, config, "review", ReviewConfig)
    typer.echo(
        f"OK: {file} (site {config.site.site_id}, line {config.site.line_id}, "
        f"taxonomy: {len(taxonomy.types)} defect types + {taxonomy.normal.id})"
    )


@app.command("demo")
def demo(
    garments: int = typer.Option(120, "--garments", "-n", help="Garments the synthetic line sends."),
    rate: float = typer.Option(
        1.0, "--rate", help="Belt rate, garments per second (1/s suits a 2-core machine)."
    ),
    views: int = typer.Option(1, "--views", help="Camera views per garment (1-4)."),
    out: Path = typer.Option(
        Path("demo-run"), "--out", "-o", help="Folder for the config, logs, data and summary."
    ),
    detector: Path | None = typer.Option(
        None, "--detector", help="ONNX detector (default: the shipped demo detector)."
    ),
    classifier: Path | None = typer.Option(
        None, "--classifier", help="Qwen2.5-VL folder (default: the shipped demo classifier)."
    ),
    mqtt_url: str = typer.Option(
        "mqtt://127.0.0.1:1883", "--mqtt-url", help="Broker to use if one answers there; else one is started."
    ),
    live: bool = typer.Option(
        True, "--live/--no-live", help="Live table (on a terminal) or a line every few seconds."
    ),
    review: bool = typer.Option(
        True, "--review/--no-review", help="Start the review console for garments routed to people."
    ),
    simulated_reviewer: bool = typer.Option(
        True,
        "--simulated-reviewer/--no-simulated-reviewer",
        help="A bot works the review queue from the synthetic truth.",
    ),
    hold: bool = typer.Option(
        False, "--hold", help="Keep the review console running after the line ends (Ctrl-C stops)."
    ),
    learn: bool = typer.Option(
        False,
        "--learn",
        help="Then one learning cycle: retrain the classifier on the reviews, gate it, run the line again "
        "with it as a canary, promote or roll back (README 'A demo that learns').",
    ),
    learn_steps: int = typer.Option(300, "--learn-steps", help="--learn: the candidate's training steps."),
    canary_share: float = typer.Option(
        0.5, "--canary-share", help="--learn: share of the second run's garments the candidate decides."
    ),
) -> None:
    """Run the whole loop on this machine: broker, cloud service with local vLLM, edge agent, synthetic line.

    Exits 1 if not every garment got a line command, 2 for bad arguments.
    """
    from seamline.demo.dashboard import stats_table
    from seamline.demo.runner import run_demo
    from seamline.demo.settings import DemoSettings

    if garments < 1 or rate <= 0 or not 1 <= views <= 4 or learn_steps < 1 or not 0 < canary_share <= 1:
        typer.echo(
            "error: --garments must be >= 1, --rate > 0, --views 1-4, --learn-steps >= 1, "
            "--canary-share in (0, 1]",
            err=True,
        )
        raise typer.Exit(2)
    if learn and not (review and simulated_reviewer):
        typer.echo(
            "error: --learn learns from the simulated reviewer's decisions: drop --no-review", err=True
        )
        raise typer.Exit(2)
    settings = DemoSettings(
        garments=garments,
        rate_hz=rate,
        views=views,
        out_dir=out,
        mqtt_url=mqtt_url,
        review=review,
        simulated_reviewer=simulated_reviewer,
        hold=hold,
        learn=learn,
        learn_steps=learn_steps,
        canary_share=canary_share,
    )
    if detector is not None:
        settings.detector = detector
    if classifier is not None:
        settings.classifier = classifier
    with stop_on_signals():  # SIGTERM unwinds like Ctrl-C: run_demo stops the processes it started
        stats = run_demo(settings, live=live).stats
    from rich.console import Console

    title = "Seamline demo: summary" + (" of run 1" if learn else "")
    Console().print(stats_table(settings, stats, title=title))
    if stats.extra.get("learning"):
        from seamline.demo.learning import learning_markdown

        typer.echo(learning_markdown(stats.extra["learning"]))
    typer.echo(f"summary: {out / 'summary.md'} and {out / 'summary.json'}; logs in {out / 'logs'}")
    if stats.garments < garments:
        typer.echo(f"error: only {stats.garments} of {garments} garments got a line command", err=True)
        raise typer.Exit(1)


def _register_subcommands() -> None:
    # Each job owns its command module; they import their heavy dependencies only when run.
    from cloud.cli import app as cloud_app
    from cloud.cli import data_app
    from cloud.learning.cli import app as train_app
    from cloud.learning.loop_cli import gate_app, golden_app, learn_app, registry_app
    from cloud.learning.rollout_cli import app as rollout_app
    from cloud.review.cli import app as review_app
    from cloud.review.cli import report_app
    from cloud.routing.cli import app as routing_app
    from edge.cli import app as edge_app
    from seamline.broker_cli import app as broker_app
    from seamline.certs_cli import app as certs_app
    from seamline.modelzoo.cli import app as models_app
    from seamline.synth.cli import synth

    app.command("synth", help="Render the synthetic conveyor line: images, COCO annotations, truth.")(synth)
    models_app.add_typer(registry_app)  # list, show, promote, register: the MLflow model registry
    app.add_typer(
        models_app, name="models", help="Build models from configs; the model registry (list, show, promote)."
    )
    app.add_typer(edge_app, name="edge", help="The edge agent: run it, export its detector.")
    app.add_typer(cloud_app, name="cloud", help="The cloud classifier service.")
    app.add_typer(train_app, name="train", help="Train the detector and the classifier.")
    app.add_typer(golden_app, name="golden", help="The golden set: frozen labels no training uses.")
    app.add_typer(gate_app, name="gate", help="Judge a candidate model version against the champion.")
    app.add_typer(learn_app, name="learn", help="The retraining worker: triggers, train, register, gate.")
    app.add_typer(
        rollout_app, name="rollout", help="Roll a candidate out: shadow, canary, promote, roll back."
    )
    app.add_typer(
        review_app, name="review", help="The review console, reviewer accounts, verified-data exports."
    )
    app.add_typer(report_app, name="report", help="Reports from the review store (weekly).")
    app.add_typer(data_app, name="data", help="The cloud's stored data: delete a garment.")
    app.add_typer(routing_app, name="routing", help="Routing policy: calibrate it to an accuracy, replay it.")
    app.add_typer(certs_app, name="certs", help="Certificates for a site: CA, server, edge (mutual TLS).")
    app.add_typer(broker_app, name="broker", help="The site broker's access rules (Mosquitto ACL).")


_register_subcommands()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning Seamline's errors into one line and their exit code.

    1 when the job failed, 2 for bad input (``InputError``: configuration, arguments, data).
    """
    setup_logging(envs.SEAMLINE_LOG_LEVEL)
    try:
        # Outside standalone mode click returns a command's typer.Exit code instead of raising it.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool) and code != 0:
            sys.exit(code)
    except SeamlineError as exc:
        logger.debug("command failed", exc_info=True)
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except StopRequested as stop:  # SIGTERM or SIGINT, within seamline.children.stop_on_signals
        typer.echo("aborted", err=True)
        sys.exit(128 + stop.signum)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors (typer may vendor its own click) carry their own exit code
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
