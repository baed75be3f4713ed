"""Where an entity's state lives."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["StateStore"]


class StateStore(StrEnum):
    """The persistence strategies an entity can declare in ``model_config["store"]``."""

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
