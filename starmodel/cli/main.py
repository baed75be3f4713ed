"""``starmodel``: run the app, inspect entities, fetch assets, migrate the database.

Each command's module is imported when that command runs (or when ``--help`` lists it), and
plugin commands are looked for only when the name is not a built-in one: ``starmodel run``
imports what serving needs, not Alembic, the asset builder or every installed plugin.
"""

from __future__ import annotations

import importlib

import click

from starmodel.core.errors import StarModelError

__all__ = ["BUILT_IN", "StarModelCLI", "cli", "main"]

BUILT_IN: dict[str, str] = {
    "run": "starmodel.cli.run:run_command",
    "entities": "starmodel.cli.entities:entities_group",
    "assets": "starmodel.cli.assets:assets_command",
    "db": "starmodel.cli.db:db_group",
    "migrate": "starmodel.cli.db:migrate_command",
    "init": "starmodel.cli.init:init_command",
    "make": "starmodel.cli.make:make_group",
    "plugins": "starmodel.cli.plugins:plugins_group",
}
"""Built-in command name -> ``module:attribute`` of its click command."""

SUBCOMMANDS: dict[str, tuple[str, ...]] = {
    "entities": ("starmodel.cli.history:history_command",),
}
"""Commands added to a built-in group when it is loaded (defined in modules of their own)."""


class StarModelCLI(click.Group):
    """The ``starmodel`` group: built-in commands imported on first use, then plugin commands
    (``starmodel.cli`` entry points), which never replace a built-in one."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._plugins: dict[str, click.Command] | None = None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*BUILT_IN, *sorted(set(self.commands) - set(BUILT_IN)), *sorted(self.plugin_commands())]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in BUILT_IN:
            command = _load(BUILT_IN[cmd_name])
            if isinstance(command, click.Group):
                for target in SUBCOMMANDS.get(cmd_name, ()):
                    command.add_command(_load(target))
            self.add_command(command, cmd_name)
            return command
        return self.plugin_commands().get(cmd_name)

    def plugin_commands(self) -> dict[str, click.Command]:
        """The commands of the installed ``starmodel.cli`` plugins, found once."""
        if self._plugins is None:
            from starmodel.cli.plugins import cli_plugin_commands

            self._plugins = cli_plugin_commands(set(BUILT_IN) | set(self.commands))
        return self._plugins


def _load(target: str) -> click.Command:
    """The click command at ``module:attribute``."""
    module, _, attribute = target.partition(":")
    command: click.Command = getattr(importlib.import_module(module), attribute)
    return command


@click.group(cls=StarModelCLI)
@click.version_option(package_name="starmodel")
def cli() -> None:
    """StarModel: entity-centric web apps, live over Datastar."""


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
