"""``seamline broker acl``: the Mosquitto ACL for one site's broker (``seamline.contract.roles``).

seamline broker acl --site site1 --line line1 --line line2 --out /etc/mosquitto/seamline.acl
"""

from __future__ import annotations

from pathlib import Path

import typer

from seamline.errors import InputError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.command("acl")
def acl(
    site: str = typer.Option(..., "--site", help="The site this broker serves."),
    line: list[str] = typer.Option(..., "--line", help="A line of the site (repeat)."),
    root: str = typer.Option("seamline", "--root", help="mqtt.topic_root of the site's configuration."),
    out: Path | None = typer.Option(None, "--out", help="File to write (default: standard output)."),
) -> None:
    """Write the broker ACL: one user per role, least privilege (docs/contract.md, 'Who may publish what')."""
    from seamline.contract.roles import render_acl

    try:
        text = render_acl(root, site, line)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"ACL for site {site} ({len(line)} line(s)): {out}")
