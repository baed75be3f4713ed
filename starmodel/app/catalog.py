"""Which entity classes an app serves: given explicitly, or discovered in packages, plus those
plugins include (an auth plugin's ``User``)."""

from __future__ import annotations

from collections.abc import Iterable

from starmodel.core.entity import Entity, registered_entities, registry_version

__all__ = ["EntityCatalog"]


class EntityCatalog:
    """The entity classes of one app.

    Args:
        entities: serve exactly these (plus included ones).
        packages: otherwise, every entity defined in these top-level packages or modules;
            ``None``: every entity defined in the process.
    """

    def __init__(
        self, entities: Iterable[type[Entity]] | None = None, packages: Iterable[str] | None = None
    ) -> None:
        self.packages = tuple(packages) if packages is not None else None
        self._explicit = list(entities) if entities is not None else None
        self._included: list[type[Entity]] = []
        self._included_version = 0

    def entities(self) -> list[type[Entity]]:
        """The entity classes this app serves."""
        if self._explicit is not None:
            found = list(self._explicit)
        else:
            found = registered_entities()
            if self.packages is not None:
                found = [cls for cls in found if _in_packages(cls.__module__, self.packages)]
        return found + [cls for cls in self._included if cls not in found]

    def include(self, *entity_classes: type[Entity]) -> None:
        """Serve these entities too, wherever they are defined."""
        for cls in entity_classes:
            if cls not in self._included:
                self._included.append(cls)
        self._included_version += 1

    def version(self) -> tuple[int, int]:
        """Changes whenever ``entities()`` may answer differently (what depends on it can cache)."""
        return (registry_version() if self._explicit is None else 0, self._included_version)


def _in_packages(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)
