"""Connecting for migrations: a short-lived async engine, sync-to-async, URLs and errors in one line."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy import pool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from starmodel.core.errors import StarModelError

__all__ = [
    "VERSION_TABLE",
    "MigrationError",
    "display_url",
    "first_line",
    "migration_engine",
    "run_async",
    "sync_url",
]

T = TypeVar("T")
VERSION_TABLE = "alembic_version"


class MigrationError(StarModelError):
    """A migration command cannot run or failed; the message says why and what to do."""


def migration_engine(url: str) -> AsyncEngine:
    """An engine without a pool (one command, one connection), that gives up after 10 s."""
    args: dict[str, Any] = {"timeout": 10} if not url.startswith("sqlite") else {}
    return create_async_engine(url, poolclass=pool.NullPool, connect_args=args)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end from sync code (in a thread if a loop already runs here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: list[T] = []
    error: list[BaseException] = []

    def worker() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def sync_url(url: str) -> str:
    """The URL with its dialect's default (sync) driver, for offline SQL scripts."""
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """The URL for messages: no driver, no password (``postgresql://me@db:5432/app``)."""
    try:
        parsed = make_url(url)
    except Exception:
        return "<invalid url>"
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


def first_line(exc: BaseException) -> str:
    """The first line of what went wrong (the driver's own error when there is one)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
