"""``starmodel plugins list``: what is installed, from which package, and whether it loaded."""

from __future__ import annotations

import json

import click

from starmodel.adapters.driven.plugins import GROUPS, discover

__all__ = ["cli_plugin_commands", "plugins_group"]


@click.group("plugins")
def plugins_group() -> None:
    """Installed StarModel plugins (entry points)."""


@plugins_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--group", type=click.Choice(GROUPS), default=None, help="Only this entry point group.")
def list_command(as_json: bool, group: str | None) -> None:
    """List plugins of the groups starmodel.persistence, starmodel.cli and starmodel.ui."""
    plugins = discover((group,) if group else GROUPS)
    if as_json:
        click.echo(json.dumps([p.summary() for p in plugins], indent=2))
        return
    if not plugins:
        click.echo("no plugins installed")
        return
    rows = [("GROUP", "NAME", "PACKAGE", "STATUS")] + [
        (p.group, p.name, f"{p.package} {p.version}", "ok" if p.loaded else f"error: {p.error}")
        for p in plugins
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])


def cli_plugin_commands(taken: set[str]) -> dict[str, click.Command]:
    """The commands of ``starmodel.cli`` plugins by name; a broken one is skipped (and shown by
    ``starmodel plugins list``), a name in ``taken`` (a built-in command) is never replaced."""
    commands: dict[str, click.Command] = {}
    for plugin in discover(("starmodel.cli",)):
        if not plugin.loaded:
            continue
        command: click.Command = plugin.obj
        name = command.name or plugin.name
        if name in taken or name in commands:
            click.echo(f"warning: plugin command {name!r} from {plugin.package} clashes with an "
                       "existing command; ignored", err=True)
            continue
        commands[name] = command
    return commands
