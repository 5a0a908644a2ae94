"""``seamline certs``: a site CA, the cloud's (or the broker's) server certificate, an edge's certificate.

    seamline certs ca --out pki/ --name "Site 1 CA"
    seamline certs server --ca pki/ --out pki/ --host cloud.example.com --host 10.0.0.5
    seamline certs edge --ca pki/ --out pki/ --site site1 --line line1 --agent edge-line1

Files: ``ca.pem`` / ``ca.key``, ``<name>.pem`` / ``<name>.key`` (keys 0600). See ``seamline.certs``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from seamline.errors import InputError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _load_ca(folder: Path):  # type: ignore[no-untyped-def]
    from seamline.certs import Issued

    try:
        return Issued.read(folder, "ca")
    except OSError as exc:
        raise InputError(f"--ca {folder}: cannot read ca.pem and ca.key there ({exc.strerror})") from None


@app.command("ca")
def ca(
    out: Path = typer.Option(..., "--out", help="Folder for ca.pem and ca.key."),
    name: str = typer.Option("Seamline site CA", "--name", help="The CA's common name."),
    days: int = typer.Option(3650, "--days", min=1, help="Validity in days."),
) -> None:
    """Make a site CA (keep ca.key offline; ca.pem goes to every edge, cloud and broker)."""
    from seamline.certs import make_ca

    if (out / "ca.key").exists():
        raise InputError(f"{out / 'ca.key'} exists: a CA is not overwritten (rotate into a new folder)")
    cert, key = make_ca(name, days=days).write(out, "ca")
    typer.echo(f"CA: {cert} (key {key})")


@app.command("server")
def server(
    ca_dir: Path = typer.Option(..., "--ca", help="Folder with ca.pem and ca.key."),
    out: Path = typer.Option(..., "--out", help="Folder to write into."),
    host: list[str] = typer.Option(..., "--host", help="DNS name or IP address clients dial (repeat)."),
    name: str = typer.Option("server", "--name", help="File name stem: <name>.pem, <name>.key."),
    days: int = typer.Option(825, "--days", min=1, help="Validity in days."),
) -> None:
    """Issue a server certificate (the cloud's gRPC listener, the broker's TLS listener)."""
    from seamline.certs import issue_server

    cert, key = issue_server(_load_ca(ca_dir), host, days=days).write(out, name)
    typer.echo(f"server certificate for {', '.join(host)}: {cert} (key {key})")


@app.command("edge")
def edge(
    ca_dir: Path = typer.Option(..., "--ca", help="Folder with ca.pem and ca.key."),
    out: Path = typer.Option(..., "--out", help="Folder to write into."),
    site: str = typer.Option(..., "--site", help="Site id."),
    line: str = typer.Option(..., "--line", help="Line id."),
    agent: str = typer.Option(..., "--agent", help="The edge agent's id (edge.agent_id)."),
    name: str | None = typer.Option(None, "--name", help="File name stem (default: the agent id)."),
    days: int = typer.Option(365, "--days", min=1, help="Validity in days."),
) -> None:
    """Issue an edge agent's client certificate, naming spiffe://<site>/<line>/<agent>."""
    from seamline.certs import issue_edge
    from seamline.contract.identity import edge_identity

    try:
        identity = edge_identity(site, line, agent)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    cert, key = issue_edge(_load_ca(ca_dir), identity, days=days).write(out, name or agent)
    typer.echo(f"edge certificate for {identity.uri}: {cert} (key {key})")
