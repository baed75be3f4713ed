"""``CLIENT_SESSION`` / ``CLIENT_LOCAL``: entities whose state the browser keeps.

The page keeps the state in sessionStorage (one per tab) or localStorage (one per browser
profile, shared by its tabs) through StarModel's script, and sends it with every event as the
entity's signals. The server never trusts it: before an event runs, the state is checked
against the entity's schema; unknown names, wrong types or values its validators refuse give a
``ClientStateInvalid`` (422: the page shows an error toast and resets the state to the
defaults), and nothing runs. "Saving" sends the changes back in the answer; the page stores them.

State is not signed: it is the user's own data (preferences, drafts), edited in their own
browser, and validation is what protects the server. Anything a user must not be able to
change belongs in a server store (server-only fields are refused in client stores).
"""

from __future__ import annotations

from typing import TypeVar

from starmodel.core.client_state import read_client_state
from starmodel.core.context import request_signals
from starmodel.core.entity import Entity
from starmodel.core.ports import EntityRepository

__all__ = ["ClientRepository", "read_client_state"]

E = TypeVar("E", bound=Entity)


class ClientRepository(EntityRepository):
    """Reads the entity from the request's signals; writes nothing (the answer carries the
    changes, and the page stores them).

    Its "commit" is the answer itself, sent only once every store of the event committed: an
    event that is refused answers no changed state, so the page keeps what it had. Nothing can
    refuse or fail here, hence no ``prepare`` and ``commit_cannot_fail``; one instance serves
    every unit of work, so it must keep no state between calls.
    """

    commit_cannot_fail = True

    async def get(self, entity_cls: type[E], key: str) -> E | None:
        signals = request_signals.get() or {}
        raw = signals.get(entity_cls.namespace())
        if raw is None:
            return None  # nothing kept yet: the defaults
        entity = read_client_state(entity_cls, raw)
        entity._sm_key = key
        entity._sm_version = 1
        return entity

    async def save(self, entity: Entity) -> None:
        entity._sm_version += 1

    async def delete(self, entity_cls: type[Entity], key: str) -> bool:
        return False

    async def list(
        self, entity_cls: type[E], *, offset: int = 0, limit: int = 50, owner: str | None = None
    ) -> list[E]:
        return []
