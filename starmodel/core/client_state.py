"""A browser-kept entity's state, checked against the entity's schema.

The browser sends what it keeps for ``CLIENT_SESSION`` / ``CLIENT_LOCAL`` entities with every
event (and to the restore route); the server never trusts it. Used by the client store
(``ClientRepository``) and by the web adapter's restore route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from starmodel.core.entity import Entity
from starmodel.core.errors import ClientStateInvalid

__all__ = ["read_client_state"]

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
