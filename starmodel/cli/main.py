"""``starmodel``: run the app, inspect entities, fetch assets, migrate the database."""

from __future__ import annotations

import click

from starmodel.cli.assets import assets_command
from starmodel.cli.db import db_group, migrate_command
from starmodel.cli.entities import entities_group
from starmodel.cli.history import history_command
from starmodel.cli.init import init_command
from starmodel.cli.make import make_group
from starmodel.cli.plugins import add_cli_plugins, plugins_group
from starmodel.cli.run import run_command
from starmodel.core.errors import StarModelError

__all__ = ["cli", "main"]


@click.group()
@click.version_option(package_name="starmodel")
def cli() -> None:
    """StarModel: entity-centric web apps, live over Datastar."""


cli.add_command(run_command)
cli.add_command(entities_group)
entities_group.add_command(history_command)
cli.add_command(assets_command)
cli.add_command(db_group)
cli.add_command(migrate_command)
cli.add_command(init_command)
cli.add_command(make_group)
cli.add_command(plugins_group)
add_cli_plugins(cli)  # last: plugins never replace a built-in command


def main() -> None:
    """Entry point: StarModel errors become one clear line and exit code 1."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.Abort:
        click.echo("Aborted.", err=True)
        raise SystemExit(1) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except StarModelError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
