"""``starmodel jsonfile stats``: the plugin's own command (entry point ``starmodel.cli``)."""

from __future__ import annotations

import click

from starmodel_jsonfile import data_dir


@click.group("jsonfile")
def jsonfile_group() -> None:
    """The JSON-file store (starmodel-jsonfile plugin)."""


@jsonfile_group.command("stats")
def stats_command() -> None:
    """How many entities each namespace holds."""
    root = data_dir()
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        click.echo(f"no entities in {root}")
        return
    for folder in folders:
        click.echo(f"{folder.name}: {sum(1 for _ in folder.glob('*.json'))}")
