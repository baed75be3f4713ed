"""Signal naming: how an entity's fields are called in the browser (``$counter.count``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starmodel.core.entity import Entity

__all__ = ["JsExpr", "SignalNamespace", "SignalRef", "snake_case"]

_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_VALID_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]*$")


def snake_case(name: str) -> str:
    """``GlobalCounter`` -> ``global_counter``; ``HTTPStatus`` -> ``http_status``."""
    return _WORD_BOUNDARY.sub("_", name).lower()


def check_namespace(namespace: str, owner: str) -> str:
    """Refuse namespaces Datastar would treat as local (leading ``_``) or cannot address."""
    if not _VALID_NAMESPACE.match(namespace):
        from starmodel.core.errors import ConfigurationError

        raise ConfigurationError(
            f"{owner}: namespace {namespace!r} must be lower-case letters, digits and '_', "
            "starting with a letter"
        )
    return namespace


class JsExpr(str):
    """A JavaScript expression evaluated in the browser (not a literal value)."""

    __slots__ = ()


class SignalRef(JsExpr):
    """A reference to one signal, e.g. ``$counter.count``; usable in ``data-text`` and as an
    event argument (the browser sends the signal's current value)."""

    __slots__ = ()

    @property
    def path(self) -> str:
        """The signal path without the ``$`` (``counter.count``), as ``data-bind`` wants it."""
        return self[1:]


class SignalNamespace:
    """``Counter.sig.count`` -> ``SignalRef("$counter.count")``; unknown names raise.

    Records (entities addressed by key) have one namespace each: ``todo.sig.title`` ->
    ``$todo.<key>.title``, read from an instance.
    """

    __slots__ = ("_entity", "_instance")

    def __init__(self, entity: type[Entity], instance: Entity | None = None) -> None:
        self._entity = entity
        self._instance = instance

    def __getattr__(self, name: str) -> SignalRef:
        if name.startswith("__"):
            raise AttributeError(name)
        entity = self._entity
        if name == "_errors":
            return SignalRef(f"${entity.namespace()}._errors")
        if name not in entity.public_signal_names():
            raise AttributeError(
                f"{entity.__name__} has no browser signal {name!r}; "
                f"its signals are: {', '.join(sorted(entity.public_signal_names())) or 'none'}"
            )
        if entity.options().scope == "id":
            key = self._instance.record_key() if self._instance is not None else None
            if key is None:
                raise AttributeError(
                    f"{entity.__name__} records each have their own signals: read them from a "
                    f"saved record (todo.sig.{name}), not from the class"
                )
            return SignalRef(f"${entity.namespace()}.{key}.{name}")
        return SignalRef(f"${entity.namespace()}.{name}")

    def __getitem__(self, name: str) -> SignalRef:
        return self.__getattr__(name)

    def __repr__(self) -> str:
        return f"<signals of {self._entity.__name__}: ${self._entity.namespace()}.*>"

    def __dir__(self) -> list[str]:
        return sorted(self._entity.public_signal_names())

    def __iter__(self) -> Any:
        return iter(self._entity.public_signal_names())


class SignalDescriptor:
    """Class attribute ``sig``: gives the SignalNamespace of the class it is read from."""

    def __get__(self, instance: Entity | None, owner: type[Entity]) -> SignalNamespace:
        return SignalNamespace(owner, instance)
