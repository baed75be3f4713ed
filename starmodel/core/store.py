"""Where an entity's state lives."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["StateStore"]


class StateStore(StrEnum):
    """The persistence strategies an entity can declare in ``model_config["store"]``.

    Attributes:
        SERVER_MEMORY: the server process's memory (the default).
        SERVER_SQL: a row of a SQL table (SQLite or PostgreSQL); for ``table=True`` classes.
        SERVER_REDIS: a Redis hash, shared by every server process.
        CLIENT_SESSION: the browser tab's sessionStorage; nothing is kept on the server.
        CLIENT_LOCAL: the browser's localStorage, shared by its tabs.
        CUSTOM: a persistence plugin, named by ``model_config["backend"]``.
    """

    SERVER_MEMORY = "server_memory"
    SERVER_SQL = "server_sql"
    SERVER_REDIS = "server_redis"
    CLIENT_SESSION = "client_session"
    CLIENT_LOCAL = "client_local"
    CUSTOM = "custom"

    @property
    def is_client(self) -> bool:
        """The state lives in the browser (sessionStorage / localStorage), not on the server."""
        return self in (StateStore.CLIENT_SESSION, StateStore.CLIENT_LOCAL)
