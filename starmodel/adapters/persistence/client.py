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

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from starmodel.core.context import request_signals
from starmodel.core.entity import Entity
from starmodel.core.errors import ClientStateInvalid
from starmodel.core.ports import EntityRepository

__all__ = ["ClientRepository", "read_client_state"]

E = TypeVar("E", bound=Entity)


def read_client_state(entity_cls: type[E], raw: Any) -> E:
    """``raw`` (what the browser sent for the entity) as a validated entity, or
    ``ClientStateInvalid`` saying what is wrong."""
    namespace = entity_cls.namespace()
    if not isinstance(raw, Mapping):
        raise _invalid(entity_cls, {namespace: "must be an object of the entity's fields"})
    fields = entity_cls.model_fields
    # computed values and inputs bound to event parameters travel in the namespace too
    known = set(fields) | set(entity_cls.model_computed_fields)
    for spec in entity_cls.events().values():
        known.update(spec.params)
    unknown = sorted(str(name) for name in raw if name not in known and not str(name).startswith("_"))
    if unknown:
        raise _invalid(entity_cls, {name: "is not a field of this entity" for name in unknown[:10]})
    try:
        entity = entity_cls.model_validate({name: raw[name] for name in fields if name in raw})
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for item in exc.errors(include_url=False):
            errors.setdefault(".".join(str(p) for p in item["loc"]) or namespace, item["msg"])
        raise _invalid(entity_cls, errors) from None
    return entity


def _invalid(entity_cls: type[Entity], errors: dict[str, str]) -> ClientStateInvalid:
    return ClientStateInvalid(entity_cls.namespace(), errors, entity_cls().public_state())


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
