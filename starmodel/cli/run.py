"""``starmodel run``: serve the app with uvicorn; open live streams end promptly on stop."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from pathlib import Path
from typing import Any

import click
import uvicorn

from starmodel.adapters.driving.operations.logs import json_logging_config
from starmodel.app.placement import per_process_globals
from starmodel.app.settings import Settings
from starmodel.cli.discovery import find_app
from starmodel.cli.serve import StarModelServer, Supervisor
from starmodel.cli.servers import SERVERS, metrics_across_workers, serve_with_granian
from starmodel.core.errors import StarModelError
from starmodel.core.store import StateStore

__all__ = ["run_command"]


def _check_database(web: Any) -> None:
    """SQL entities: a bad DATABASE_URL or an unreachable database is one line, before serving."""
    entities = web.sql_entities() if hasattr(web, "sql_entities") else []
    if not entities:
        return
    from sqlalchemy.exc import SQLAlchemyError  # only an app with SQL entities needs it

    try:
        database = web.services.database
    except StarModelError as exc:
        raise click.ClickException(str(exc)) from None

    async def probe() -> list[str]:
        try:
            return await database.missing_tables(entities)
        finally:
            await database.dispose()  # the server opens its own connections in its own loop

    try:
        missing = asyncio.run(probe())
    except (OSError, SQLAlchemyError) as exc:
        where = database.url.split("@")[-1]
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise click.ClickException(
            f"database unreachable ({where}): {reason[0] if reason else type(exc).__name__}"
        ) from None
    migrations = Path(web.settings.migrations_dir)
    if missing and (migrations / "env.py").is_file():
        click.echo(f"warning: tables {', '.join(missing)} are missing: run `starmodel migrate`", err=True)
    # without migrations the app creates missing tables itself at start, and says so


def _fetch_page_assets(web: Any) -> None:
    """Local assets missing: fetch them once into the user's cache. When they cannot be had,
    one line says so and what to run; the app serves anyway, its pages showing a notice."""
    assets = getattr(web, "page_assets", None)
    if assets is None or not assets.local or not assets.missing:
        return
    from starmodel.adapters.driving.web.asset_fetch import AssetFetchError, ensure_bundle  # downloads

    cache = assets.found.cache
    started = time.monotonic()
    try:
        folder = ensure_bundle(cache)
    except AssetFetchError as exc:
        click.echo(
            f"warning: page assets missing and not fetched ({exc}); pages show a notice until "
            "`starmodel assets` has fetched them (or set STARMODEL_ASSETS=cdn)",
            err=True,
        )
        return
    assets.refresh()
    click.echo(f"page assets fetched into {folder} ({time.monotonic() - started:.1f} s, once)")


def _check_plugins(web: Any) -> None:
    """Entities on plugin stores: a missing or broken plugin is one line, before serving."""
    problems = web.check_backends() if hasattr(web, "check_backends") else []
    if problems:
        raise click.ClickException(problems[0])


def _check_redis(web: Any) -> None:
    """Redis entities need Redis: unreachable at start is one line and no server. A Redis used
    only for the bus is a warning: the app serves, real time stays in-process until it is back."""
    services = getattr(web, "services", None)
    if services is None:
        return
    entities = web.redis_entities()
    if not entities and not web.settings.redis_url:
        return
    connection = services.redis

    async def probe() -> None:
        try:
            await connection.ping()
        finally:
            await connection.close()  # the server connects again in its own loop

    try:
        asyncio.run(probe())
    except StarModelError as exc:
        if entities:
            names = ", ".join(cls.__name__ for cls in entities)
            raise click.ClickException(f"{exc}; {names} live there (start Redis or set REDIS_URL)") from None
        click.echo(f"warning: {exc}; live updates reach only this process's tabs until it is back", err=True)


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} is already in use on {host}; choose another with --port"
                ) from None
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _check_workers(web: Any) -> None:
    """What does not span worker processes: a global memory entity without Redis refuses to
    start (each worker would show its own copy); session memory entities and real time
    without Redis are warnings."""
    shared = per_process_globals(web.entities(), web.settings)
    if shared:
        names = ", ".join(cls.__name__ for cls in shared)
        raise click.ClickException(
            f"{names}: global memory entities would have one copy per worker; set REDIS_URL "
            "(they are then kept in Redis), or run one worker (or mark them "
            "model_config['per_process'] = True if each worker should have its own)"
        )
    memory = [cls.__name__ for cls in web.entities() if cls.options().store is StateStore.SERVER_MEMORY
              and cls.options().scope == "session"]
    if memory:
        click.echo(
            f"warning: session memory entities ({', '.join(memory)}) live in each worker process; "
            "a browser's requests may reach another worker and see another copy. Use SERVER_REDIS, "
            "SQL or a browser store for them.",
            err=True,
        )
    if not web.settings.redis_url:
        click.echo(
            "warning: without REDIS_URL each worker's changes reach only the tabs connected to "
            "that worker; set REDIS_URL for real time across workers",
            err=True,
        )


@click.command("run")
@click.argument("app", required=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--reload/--no-reload", default=False, show_default=True,
              help="Restart when source files change (development).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              help="info (development): the server's start, a line per request, StarModel's "
                   "notes; warning (production): only what needs attention.")
@click.option("--access-log/--no-access-log", default=None,
              help="uvicorn's line per request, at --log-level info or debug. [default: on at "
                   "those levels, off above: no per-request logging work]")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="json: one JSON object per line, a line per request and per event "
                   "[default: STARMODEL_LOG_FORMAT, else text]")
@click.option("--server", "server_name", default="uvicorn", show_default=True, type=click.Choice(SERVERS),
              help="The ASGI server (granian: pip install 'starmodel[granian]').")
def run_command(app: str | None, host: str, port: int, reload: bool, workers: int,
                log_level: str, access_log: bool | None, log_format: str | None, server_name: str) -> None:
    """Serve APP (module, module:attr or file.py; default: app.py in this folder).

    Logs: at the default --log-level info (development) the server prints its start, a line
    per request and StarModel's notes; in production run with --log-level warning: warnings
    and errors only, and no per-request logging work at all. --log-format json writes every
    line as JSON, with a line per request and per event (at info) instead of the access lines.
    """
    if access_log is None:
        access_log = log_level in ("info", "debug")
    if log_format is not None:  # before the app is imported: its settings read it
        os.environ["STARMODEL_LOG_FORMAT"] = log_format
    if server_name == "granian" and reload:
        raise click.ClickException("--reload needs --server uvicorn")
    found = find_app(app)
    settings = getattr(found.starmodel, "settings", None)
    json_logs = getattr(settings, "log_format", log_format) == "json"
    log_config = json_logging_config(log_level) if json_logs else None
    if found.starmodel is not None:
        _check_plugins(found.starmodel)
        _check_database(found.starmodel)
        _check_redis(found.starmodel)
    if reload and workers > 1:
        raise click.ClickException("--reload and --workers > 1 cannot be combined")
    _check_port(host, port)
    if found.starmodel is not None:
        _fetch_page_assets(found.starmodel)
    if workers > 1 and found.starmodel is not None:
        _check_workers(found.starmodel)
    click.echo(f"StarModel serving {found.import_string} on http://{host}:{port}")
    if server_name == "granian":
        with metrics_across_workers(workers > 1 and getattr(settings, "metrics", False)):
            serve_with_granian(found.import_string, host=host, port=port, workers=workers,
                               log_level=log_level, log_config=log_config,
                               access_log=access_log and not json_logs)
        return
    target: Any = found.import_string if (reload or workers > 1) else found.asgi
    # JSON logs: the request lines replace uvicorn's access lines
    json_logs_options: dict[str, Any] = (
        {"log_config": log_config, "access_log": False} if log_config else {"access_log": access_log}
    )
    grace = (found.starmodel.settings if found.starmodel is not None else Settings()).shutdown_grace
    config = uvicorn.Config(
        target,
        host=host,
        port=port,
        reload=reload,
        workers=workers,
        log_level=log_level,
        timeout_graceful_shutdown=max(1, round(grace)),  # then open requests are ended
        lifespan="on",
        proxy_headers=False,  # STARMODEL_TRUSTED_PROXIES decides whom to believe
        **json_logs_options,
    )
    server = StarModelServer(config)
    if reload:
        from uvicorn.supervisors import ChangeReload

        sock = config.bind_socket()
        ChangeReload(config, target=server.run, sockets=[sock]).run()
    elif workers > 1:
        sock = config.bind_socket()
        with metrics_across_workers(getattr(settings, "metrics", False)):
            code = Supervisor(config, [sock], grace=grace).run()
        if code:
            raise SystemExit(code)
    else:
        server.run()
