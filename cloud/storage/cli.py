"""``seamline data ...``: delete a garment's data on request (a privacy request, a mistaken capture).

    seamline data delete ITEM_ID --config FILE [--by NAME] [--reason TEXT]

Exit 2 when the garment is unknown, still being classified or waiting for a person.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer

app = typer.Typer(help="The cloud's stored data: delete a garment.", no_args_is_help=True)


@app.command("delete")
def delete(
    item_id: str = typer.Argument(..., help="The garment's item id."),
    config: Path = typer.Option(..., "--config", "-c", help="Seamline YAML with a 'cloud:' section."),
    by: str | None = typer.Option(
        None, "--by", help="Who asks (default: the login name); kept in the trail."
    ),
    reason: str = typer.Option("deletion requested", "--reason", help="Why; kept in the audit trail."),
) -> None:
    """Delete one finished garment's crops and records; the audit trail keeps that it was deleted."""
    from cloud.config import CloudConfig
    from cloud.storage.audit import AuditStore
    from cloud.storage.crop_store import crop_store_from_url
    from cloud.storage.retention import Retention
    from seamline.config.models import load_config, load_section

    seamline_config = load_config(config)
    cloud = load_section(config, seamline_config, "cloud", CloudConfig)
    data_dir = seamline_config.storage.data_dir
    store = AuditStore.from_url(cloud.audit_url or f"sqlite:///{data_dir / 'cloud' / 'audit.db'}")
    crop_store = crop_store_from_url(cloud.crop_store, base=data_dir / "cloud")
    try:
        deleted = Retention(store.engine, crop_store).delete(item_id, by or getpass.getuser(), reason)
    finally:
        store.engine.dispose()
    typer.echo(
        json.dumps({"deleted": deleted.item_id, "crops": deleted.crops, "crops_pending": deleted.pending})
    )
