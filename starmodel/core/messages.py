"""Facts published on the bus after a unit of work commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

__all__ = ["CancelRequested", "DomainEvent", "EntityChanged", "EventOutputs", "OutputsCodec"]


class DomainEvent:
    """Base for an app's own past-tense events (optional: any object can be emitted).

    Subclasses that are dataclasses or pydantic models with JSON-ready fields can cross
    processes (a bus over Redis sends them by their registered name); other events stay in
    the process that emitted them.
    """

    registry: ClassVar[dict[str, type[DomainEvent]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        DomainEvent.registry[f"{cls.__module__}.{cls.__qualname__}"] = cls

    @classmethod
    def event_name(cls) -> str:
        """The name a bus sends this class under (``module.QualName``)."""
        return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True)
class EntityChanged(DomainEvent):
    """An entity's browser-visible state changed and was committed.

    Attributes:
        namespace: the entity's signal namespace (``counter``).
        key: the entity's identity within its class (session id, ``global`` or a primary key).
        scope: ``session`` (only that session's tabs see it) or ``global`` (every tab).
        changes: changed public fields and computed values, JSON-ready.
        session_id: the session that owns a session-scoped entity.
        origin_tab: the tab whose request made the change (it already has the answer).
        origin_session: the session of that tab.
        created: the record was inserted (``changes`` holds its whole public state).
        deleted: the record was deleted.
        owner: the session owning a private record (only its tabs may see the change).
    """

    namespace: str
    key: str
    scope: str
    changes: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    origin_tab: str | None = None
    origin_session: str | None = None
    created: bool = False
    deleted: bool = False
    owner: str | None = None


@dataclass(frozen=True)
class EventOutputs(DomainEvent):
    """What a background event returned or yielded (components, actions), for every tab that
    shows the entity; its state changes travel as ``EntityChanged`` like any other.

    The outputs are data (components, actions), rendered by the web adapter of each process
    that sends them to a tab; ``selector`` and ``mode`` are the event's, for its components.
    Across processes they travel encoded by that adapter (``OutputsCodec``)."""

    namespace: str
    key: str
    scope: str
    outputs: list[Any] = field(default_factory=list)
    session_id: str | None = None
    selector: str | None = None
    mode: str | None = None


class OutputsCodec(Protocol):
    """How a bus that crosses processes sends ``EventOutputs.outputs``: the web adapter's
    encoding, handed to the bus by the composition root."""

    def encode(self, fact: EventOutputs) -> Any:
        """The outputs as JSON-ready data."""
        ...

    def decode(self, data: Any) -> list[Any]:
        """Outputs the same adapter sends to a tab."""
        ...


@dataclass(frozen=True)
class CancelRequested(DomainEvent):
    """Somebody asked to stop the background event ``event`` running on an entity; the
    process running it (whichever it is) cancels it."""

    namespace: str
    key: str
    event: str
