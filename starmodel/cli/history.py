"""``starmodel entities history NAME [KEY]``: what the journal of an entity holds."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from starmodel.adapters.driven.journal.memory import MemoryJournal
from starmodel.bootstrap import StarModel
from starmodel.cli.discovery import find_app
from starmodel.core.entity import Entity
from starmodel.core.errors import StarModelError
from starmodel.core.journal import JournalEntry

__all__ = ["history_command"]


@click.command("history")
@click.argument("name")
@click.argument("key", required=False)
@click.option("--app", "app", default=None, help="The app (default: app.py / STARMODEL_APP).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="The most entries shown (newest first).")
def history_command(name: str, key: str | None, app: str | None, as_json: bool, limit: int) -> None:
    """The journal of entity NAME: its newest changes (of record KEY only, when given): who
    ran which event, when, and what each changed field was before and after."""
    found = find_app(app)
    sm = found.starmodel
    if not isinstance(sm, StarModel):
        raise click.ClickException(f"{found.import_string} is not a StarModel app")
    entity_cls = _entity(sm, name)
    if entity_cls.options().journal is None:
        raise click.ClickException(
            f"{entity_cls.__name__} keeps no journal; turn it on with model_config['journal'] = True"
        )
    journal = sm.services.journal_for(entity_cls)
    if isinstance(journal, MemoryJournal):
        raise click.ClickException(
            f"{entity_cls.__name__}'s journal is kept in the memory of each server process, out of "
            "this command's reach; set REDIS_URL to keep it in Redis"
        )

    async def read() -> list[JournalEntry]:
        try:
            return await journal.history(entity_cls.namespace(), key, limit=limit)
        finally:
            await sm.services.close()

    try:
        entries = asyncio.run(read())
    except StarModelError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([entry.to_dict() for entry in entries], indent=2, default=str))
        return
    if not entries:
        click.echo(f"no journal entries for {entity_cls.__name__}" + (f" {key}" if key else ""))
        return
    for entry in entries:
        click.echo(_line(entry))
        for field, (before, after) in entry.changes.items():
            click.echo(f"    {field}: {_short(before)} -> {_short(after)}")


def _entity(sm: StarModel, name: str) -> type[Entity]:
    wanted = name.lower()
    entities = sm.entities()
    match = [c for c in entities if wanted in (c.__name__.lower(), c.namespace())]
    if not match:
        known = ", ".join(sorted(c.__name__ for c in entities)) or "none"
        raise click.ClickException(f"unknown entity {name!r}; known entities: {known}")
    return match[0]


def _line(entry: JournalEntry) -> str:
    when = entry.at.strftime("%Y-%m-%d %H:%M:%S")
    params = ", ".join(f"{k}={_short(v)}" for k, v in entry.params.items())
    undo = f"  (undoes #{entry.undoes})" if entry.undoes else ""
    return (
        f"#{entry.id}  {when} UTC  {entry.key} v{entry.version}  {entry.event}({params})  "
        f"by {entry.actor}{undo}"
    )


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"
