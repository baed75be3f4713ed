"""``DATABASE_URL``: which databases StarModel supports, and the async driver of each."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from starmodel.core.errors import ConfigurationError

__all__ = ["normalize_url", "server_name"]

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def normalize_url(url: str) -> str:
    """``DATABASE_URL`` with an async driver (``sqlite:///x.db`` -> ``sqlite+aiosqlite:///x.db``)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            f"DATABASE_URL {url!r} is not a database URL (e.g. sqlite:///app.db or "
            "postgresql://user@host/db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"DATABASE_URL: {backend!r} databases are not supported (sqlite, postgresql)"
        )
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


def server_name(url: str) -> str:
    """Which PostgreSQL server a URL names, without credentials (for messages)."""
    parsed = make_url(url)
    return f"PostgreSQL at {parsed.host or 'localhost'}:{parsed.port or 5432}"
