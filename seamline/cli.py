"""The ``seamline`` command line: one entry point, a sub-command per job.

Exit codes: 0 success; 1 the job ran and failed; 2 bad input (configuration, arguments, data).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from seamline import envs
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
    from seamline.config import load_config

    from edge.config import EdgeConfig
    from seamline.config.models import load_section

    config = load_config(file)
    taxonomy = config.load_taxonomy()
    if config.edge is not None:
        load_section(file, config, "edge", EdgeConfig)
    if config.cloud is not None:
        from cloud.config import CloudConfig

        load_section(file, config, "cloud", CloudConfig)
    typer.echo(
        f"OK: {file} (site {config.site.site_id}, line {config.site.line_id}, "
        f"taxonomy: {len(taxonomy.types)} defect types + {taxonomy.normal.id})"
    )


def _register_subcommands() -> None:
    # Each job owns its command module; they import their heavy dependencies only when run.
    from cloud.cli import app as cloud_app
    from edge.cli import app as edge_app
    from seamline.modelzoo.cli import app as models_app
    from seamline.synth.cli import synth

    app.command("synth", help="Render the synthetic conveyor line: images, COCO annotations, truth.")(synth)
    app.add_typer(models_app, name="models", help="Build models (tiny test models from configs).")
    app.add_typer(edge_app, name="edge", help="The edge agent: run it, export its detector.")
    app.add_typer(cloud_app, name="cloud", help="The cloud classifier service.")


_register_subcommands()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning Seamline's errors into one line and exit code 2."""
    setup_logging(envs.SEAMLINE_LOG_LEVEL)
    try:
        app(args=argv, standalone_mode=False)
    except SeamlineError as exc:
        logger.debug("command failed", exc_info=True)
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
