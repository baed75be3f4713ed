"""Presence: who is looking at an entity instance right now.

An entity declares ``model_config["presence"] = True``; every open tab whose page shows one of
its instances is a viewer of that instance until the tab closes (or its server process dies
and its heartbeats stop). The viewers are kept by a ``PresenceTracker`` (this process's
memory, or Redis for every process); a ``PresenceChanged`` fact on the bus tells every process
to push the new list to its tabs. Event bodies read the list with ``await presence_of(self)``.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from starmodel.core.errors import ConfigurationError
from starmodel.core.messages import DomainEvent

if TYPE_CHECKING:
    from starmodel.core.context import CallContext
    from starmodel.core.entity import Entity

__all__ = [
    "PRESENCE_KEY",
    "PresenceChanged",
    "PresenceReader",
    "PresenceTracker",
    "Viewer",
    "current_presence",
    "default_viewer",
    "presence_of",
    "presence_topic",
    "viewer_id",
]

PRESENCE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""The instance keys presence accepts (what a page may name; anything else is ignored)."""


@dataclass(frozen=True)
class Viewer:
    """One person looking at an instance: a signed-in user, or a browser session.

    Attributes:
        id: stable and public (a hash: never the session id itself); tabs of the same person
            count once.
        name: what other viewers see.
        avatar: an image URL, if any (else initials are shown).
        since: when this person started looking (seconds since the epoch).
    """

    id: str
    name: str
    avatar: str | None = None
    since: float = 0.0

    @property
    def initials(self) -> str:
        """Up to two letters: "Ada Lovelace" -> "AL", "grace" -> "G"."""
        words = re.findall(r"[^\W_]+", self.name)  # letters and digits only
        return "".join(w[0] for w in words[:2]).upper() or "?"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "avatar": self.avatar, "since": self.since}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Viewer:
        avatar = data.get("avatar")
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            avatar=str(avatar) if avatar else None,
            since=float(data.get("since", 0.0)),
        )


def viewer_id(kind: str, raw: Any) -> str:
    """A public id for a user (``kind="user"``) or session: a short hash of the raw id."""
    return f"{kind[0]}-{hashlib.sha256(f'{kind}:{raw}'.encode()).hexdigest()[:12]}"


def default_viewer(ctx: CallContext) -> Viewer:
    """A signed-in user by ``name`` (else the part of ``email`` before the ``@``); a visitor as
    "Guest" and four letters of a hash of the session (never the session id itself)."""
    user = ctx.user
    if user is not None:
        raw_id = getattr(user, "id", None) or getattr(user, "email", None) or str(user)
        name = str(getattr(user, "name", "") or "").strip()
        if not name:
            name = str(getattr(user, "email", "") or "").partition("@")[0] or "User"
        return Viewer(viewer_id("user", raw_id), name[:60], getattr(user, "avatar", None) or None)
    public = viewer_id("session", ctx.session_id)
    return Viewer(public, f"Guest {public[-4:]}")


def presence_topic(namespace: str, key: str) -> str:
    """Where the viewers of one instance are kept: ``<namespace>:<key>``."""
    return f"{namespace}:{key}"


class PresenceTracker(ABC):
    """Keeps the viewers of each instance (a topic), each connection with an expiry.

    A connection (one tab's live stream) joins with a time to live and is renewed by joining
    again (a beat); one that is not renewed in time drops out of ``viewers``. The memory
    tracker serves one process; the Redis tracker every process that shares the Redis.
    """

    @abstractmethod
    async def update(
        self,
        joined: Mapping[str, Mapping[str, Viewer]],
        left: Mapping[str, Collection[str]],
        ttl: float,
    ) -> None:
        """In one step: connections that look at a topic as a viewer for ``ttl`` seconds
        (``topic -> connection -> viewer``; a connection already there is renewed, one dropped
        meanwhile is added again), and connections that stopped (``topic -> connections``)."""

    async def join(self, topic: str, connection: str, viewer: Viewer, ttl: float) -> None:
        """``connection`` looks at ``topic`` as ``viewer`` for ``ttl`` seconds (unless renewed)."""
        await self.update({topic: {connection: viewer}}, {}, ttl)

    async def leave(self, topic: str, connection: str) -> None:
        """``connection`` no longer looks at ``topic``."""
        await self.update({}, {topic: [connection]}, 0.0)

    @abstractmethod
    async def viewers(self, topic: str) -> list[Viewer]:
        """The viewers of ``topic`` not expired, one per connection, in joining order."""

    async def viewers_of(self, topics: list[str]) -> dict[str, list[Viewer]]:
        """``viewers`` of several topics (a tracker over a network reads them in one trip)."""
        return {topic: await self.viewers(topic) for topic in topics}

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections when the app stops."""


@dataclass(frozen=True)
class PresenceChanged(DomainEvent):
    """Somebody started or stopped looking at an instance: every process pushes the new list
    of viewers to its tabs that show it."""

    namespace: str
    key: str


class PresenceReader(Protocol):
    """What event bodies and pages ask of presence (the app's ``PresenceService``)."""

    async def of(self, target: type[Entity] | Entity, key: Any = None) -> list[Viewer]: ...


current_presence: ContextVar[PresenceReader | None] = ContextVar("sm_presence", default=None)
"""The running app's presence, set by the dispatcher for each event."""


async def presence_of(target: type[Entity] | Entity, key: Any = None) -> list[Viewer]:
    """Inside an ``@event``: who is looking at ``target`` (an instance, or a class and its key).

        @event
        async def assign_to_viewer(self):
            viewers = await presence_of(self)
    """
    reader = current_presence.get()
    if reader is None:
        raise ConfigurationError(
            "presence_of() is available inside an @event; in a page use `await sm.presence.of(...)`"
        )
    return await reader.of(target, key)
