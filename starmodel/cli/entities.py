"""``starmodel entities list|inspect``: what the app's entities are and how to reach them."""

from __future__ import annotations

import json
import typing
from typing import Any

import click
from pydantic_core import PydanticUndefined
from sqlalchemy import Enum, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from starmodel.adapters.driven.migrations import Migrations
from starmodel.adapters.driven.stores.sql import build_table
from starmodel.bootstrap import StarModel
from starmodel.cli.discovery import find_app
from starmodel.core.entity import Entity
from starmodel.core.errors import StarModelError
from starmodel.core.files import file_fields
from starmodel.core.policy import ACTIONS
from starmodel.core.store import StateStore

__all__ = ["describe_entity", "entities_group", "table_status"]


def _type_name(annotation: Any) -> str:
    if annotation is None:
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default(value: Any) -> Any:
    if value is PydanticUndefined or value is Ellipsis:
        return None
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def describe_table(cls: type[Entity], dialect: Dialect | None = None) -> dict[str, Any] | None:
    """The table of a SQL entity (``None`` for other entities): name and columns, from the code,
    with the column types ``dialect`` (the app's database) gives them."""
    if not cls.options().table:
        return None
    try:
        table = build_table(cls, MetaData())
    except StarModelError as exc:
        raise click.ClickException(str(exc)) from None
    columns = [
        {
            "name": column.name,
            "type": _column_type(column.type, dialect),
            "nullable": bool(column.nullable),
            "primary_key": bool(column.primary_key),
        }
        for column in table.columns
    ]
    return {"name": table.name, "columns": columns}


def _column_type(column_type: TypeEngine[Any], dialect: Dialect | None) -> str:
    """``VARCHAR(7)`` where the database stores an enum as text; ``ENUM category (tools, ...)``
    where it makes an enum type of its own (PostgreSQL)."""
    text = column_type.compile(dialect=dialect) if dialect is not None else str(column_type)
    native = dialect is not None and dialect.supports_native_enum
    if isinstance(column_type, Enum) and column_type.native_enum and native:
        return f"ENUM {text} ({', '.join(column_type.enums)})"
    return text


def database_dialect(starmodel: StarModel | None) -> Dialect | None:
    """The SQL dialect of the app's database (no connection is made), if it has one."""
    if not isinstance(starmodel, StarModel):
        return None
    try:
        return starmodel.services.database.engine.dialect
    except StarModelError:
        return None


def table_status(starmodel: StarModel | None, cls: type[Entity]) -> dict[str, Any]:
    """Whether the entity's table exists and where the migrations stand (connects)."""
    unknown: dict[str, Any] = {"exists": None, "migrations": "unknown", "pending": None}
    if not isinstance(starmodel, StarModel):
        return unknown | {"error": "not a StarModel app"}
    try:
        migrations = Migrations(
            starmodel.settings.migrations_dir, starmodel.services.database, starmodel.sql_entities()
        )
        status = migrations.status()
        name = migrations.database.table(cls).name
    except StarModelError as exc:
        return unknown | {"error": str(exc)}
    return {
        "exists": name in status.tables,
        "migrations": status.summary(),
        "pending": len(status.pending) if status.initialised else None,
        "error": None,
    }


def describe_entity(cls: type[Entity], dialect: Dialect | None = None) -> dict[str, Any]:
    """Everything ``inspect`` shows, JSON-ready (``table`` is ``None`` for non-SQL entities).

    A record entity's signals are per record: ``$todo.<key>.title``.
    """
    options = cls.options()
    namespace = cls.namespace()
    fields = []
    for name, info in cls.model_fields.items():
        fields.append({
            "name": name,
            "type": _type_name(info.annotation),
            "default": _default(info.get_default(call_default_factory=False))
            if not info.is_required() else None,
            "required": info.is_required(),
            "server_only": name in cls.__starmodel_server_only__,
        })
    computed = [
        {"name": name, "type": _type_name(info.return_type)}
        for name, info in cls.model_computed_fields.items()
    ]
    events = []
    for spec in cls.events().values():
        hints = typing.get_type_hints(spec.fn)
        params = [
            {
                "name": name,
                "type": _type_name(hints.get(name, Any)),
                "default": None if p.default is p.empty else _default(p.default),
                "required": p.default is p.empty,
            }
            for name, p in spec.params.items()
        ]
        events.append({
            "name": spec.name,
            "method": spec.method.upper(),
            "route": spec.route_path(cls),
            "kind": spec.kind,
            "selector": spec.selector,
            "mode": spec.mode,
            "background": spec.background,
            "allow": _rule_name(spec.allow) if spec.allow is not None else None,
            "rate": str(spec.rate) if spec.rate is not None else None,
            "params": params,
        })
    return {
        "name": cls.__name__,
        "module": cls.__module__,
        "namespace": namespace,
        "store": options.store.name,
        "scope": options.scope,
        "ttl": options.ttl,
        "fields": fields,
        "computed": computed,
        "events": events,
        "signals": [f"${namespace}.{'<key>.' if options.scope == 'id' else ''}{name}"
                    for name in cls.public_signal_names()],
        "policy": describe_policy(cls),
        "files": {name: {"max_size": rules.max_size, "accept": list(rules.accept)}
                  for name, rules in file_fields(cls).items()},
        "presence": options.presence,
        "table": describe_table(cls, dialect),
        "redis": describe_redis_keys(cls),
        "journal": options.journal.describe() if options.journal is not None else None,
    }


def _rule_name(rule: Any) -> str:
    if rule is True:
        return "anyone"
    if rule is False:
        return "nobody"
    return str(getattr(rule, "__name__", None) or type(rule).__name__)


def describe_policy(cls: type[Entity]) -> dict[str, str] | None:
    """Who may do what (``model_config["policy"]``), by rule name; ``None``: no policy."""
    policy = cls.options().policy
    if policy is None:
        return None
    return {action: _rule_name(policy.rule(action)) for action in ACTIONS}


def describe_redis_keys(cls: type[Entity], prefix: str = "sm") -> dict[str, str] | None:
    """Where a Redis entity's data lives (``None`` for other stores)."""
    if cls.options().store is not StateStore.SERVER_REDIS:
        return None
    namespace = cls.namespace()
    key = {"session": "<session id>", "global": "global"}.get(cls.options().scope, "<key>")
    return {"record": f"{prefix}:{namespace}:{key}", "index": f"{prefix}:{namespace}"}


@click.group("entities")
def entities_group() -> None:
    """List and inspect the app's entities."""


@entities_group.command("list")
@click.argument("app", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(app: str | None, as_json: bool) -> None:
    """List the entities APP serves."""
    entities = find_app(app).entities()
    rows = [describe_entity(cls) for cls in entities]
    if as_json:
        click.echo(json.dumps([
            {k: r[k] for k in ("name", "namespace", "store", "scope", "ttl")}
            | {"events": [e["name"] for e in r["events"]]}
            for r in rows
        ], indent=2))
        return
    if not rows:
        click.echo("no entities found")
        return
    header = ("ENTITY", "NAMESPACE", "STORE", "SCOPE", "EVENTS")
    table = [header] + [
        (r["name"], r["namespace"], r["store"], r["scope"], ", ".join(e["name"] for e in r["events"]))
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@entities_group.command("inspect")
@click.argument("name")
@click.option("--app", "app", default=None, help="The app (default: app.py / STARMODEL_APP).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect_command(name: str, app: str | None, as_json: bool) -> None:
    """Show fields, store, table, events (routes, parameters) and signals of entity NAME."""
    found = find_app(app)
    entities = found.entities()
    wanted = name.lower()
    match = [c for c in entities if wanted in (c.__name__.lower(), c.namespace())]
    if not match:
        known = ", ".join(sorted(c.__name__ for c in entities)) or "none"
        raise click.ClickException(f"unknown entity {name!r}; known entities: {known}")
    info = describe_entity(match[0], database_dialect(found.starmodel))
    if info["redis"] is not None and found.starmodel is not None:
        info["redis"] = describe_redis_keys(match[0], found.starmodel.settings.redis_prefix)
    if info["table"] is not None:
        info["table"].update(table_status(found.starmodel, match[0]))
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['name']}  ({info['module']})")
    ttl = f", ttl {info['ttl']:g}s" if info["ttl"] else ""
    click.echo(f"  store: {info['store']}, scope: {info['scope']}{ttl}, namespace: {info['namespace']}")
    click.echo(f"  journal: {info['journal'] or 'off'}")
    click.echo("  fields:")
    for f in info["fields"]:
        extra = " [server-only]" if f["server_only"] else ""
        default = "required" if f["required"] else f"= {f['default']!r}"
        click.echo(f"    {f['name']}: {f['type']} {default}{extra}")
    if info["table"] is not None:
        _echo_table(info["table"])
    if info["redis"] is not None:
        click.echo(f"  redis: hash {info['redis']['record']} (fields v, d, o), "
                   f"index {info['redis']['index']}")
    if info["computed"]:
        click.echo("  computed:")
        for c in info["computed"]:
            click.echo(f"    {c['name']}: {c['type']}")
    click.echo("  events:")
    for e in info["events"]:
        params = ", ".join(
            f"{p['name']}: {p['type']}" + ("" if p["required"] else f" = {p['default']!r}")
            for p in e["params"]
        )
        allow = f"  allow: {e['allow']}" if e["allow"] else ""
        rate = f"  rate: {e['rate']}" if e["rate"] else ""
        click.echo(f"    {e['name']}({params})  {e['method']} {e['route']}  [{e['kind']}]{allow}{rate}")
    if info["files"]:
        click.echo("  files: " + ", ".join(
            f"{name} ({', '.join(rules['accept']) or 'any type'}, at most {rules['max_size']:,} bytes)"
            for name, rules in info["files"].items()))
    if info["policy"] is not None:
        click.echo("  policy: " + ", ".join(f"{action} {rule}" for action, rule in info["policy"].items()))
    if info["presence"]:
        click.echo("  presence: kept (who is looking at each instance: sm.presence.of, sm.presence_view)")
    click.echo("  signals: " + ", ".join(info["signals"]))


def _echo_table(table: dict[str, Any]) -> None:
    if table["exists"] is None:
        state = f"status unknown: {table['error']}"
    else:
        state = f"table {'exists' if table['exists'] else 'missing'}; migrations: {table['migrations']}"
    click.echo(f"  table: {table['name']} ({state})")
    width = max(len(c["name"]) for c in table["columns"])
    type_width = max(len(c["type"]) for c in table["columns"])
    for column in table["columns"]:
        flags = "primary key" if column["primary_key"] else ("null" if column["nullable"] else "not null")
        click.echo(f"    {column['name']:<{width}}  {column['type']:<{type_width}}  {flags}")
