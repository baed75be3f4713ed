"""Presence over the live streams: a tab joins the instances its page shows, and gets their
viewers pushed whenever they change.

The page names what it shows with the element ``presence_element`` draws (its signal
``smhere.<namespace>.<key>``); the tab's live stream sends that signal when it opens. Each
instance of a class that keeps presence, and that the caller may ``read``, becomes a topic of
the stream (``presence:<namespace>:<key>``); when the stream starts receiving, the tab joins
those instances, and leaves them when it ends.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from datastar_py.sse import ServerSentEventGenerator as SSE

from starmodel.adapters.driving.live.stream import LiveHub, LiveStream
from starmodel.adapters.driving.ui.presence import HERE_SIGNAL, Render, presence_html
from starmodel.app.presence import PresenceService
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.presence import PRESENCE_KEY, Viewer

__all__ = ["MAX_LOOKED_AT", "LivePresence", "Looking", "presence_stream_topic"]

MAX_LOOKED_AT = 20
"""Instances one tab may look at at once (more named by a page are ignored)."""


def presence_stream_topic(namespace: str, key: str) -> str:
    return f"presence:{namespace}:{key}"


@dataclass(frozen=True, slots=True)
class Looking:
    """What a tab is to presence: who, as which connection, looking at which instances."""

    viewer: Viewer
    connection: str
    instances: tuple[tuple[str, str], ...]


class LivePresence:
    """Joins and leaves for the live streams of this process, and pushes viewers to them."""

    def __init__(
        self, hub: LiveHub, service: PresenceService, entities: Callable[[], list[type[Entity]]]
    ) -> None:
        self.hub = hub
        self.service = service
        self.entities = entities
        self.renderers: dict[str, Render] = {}
        hub.on_join.append(self._joined)
        hub.on_leave.append(self._left)
        service.listeners.append(self._changed)

    def looking_at(self, signals: Any, session_id: str, user: Any = None) -> list[tuple[str, str]]:
        """The instances a live stream's signals name, among classes that keep presence and
        that the caller may read; anything else is ignored."""
        named = signals.get(HERE_SIGNAL) if isinstance(signals, dict) else None
        if not isinstance(named, dict):
            return []
        kept = {cls.namespace(): cls for cls in self.entities() if cls.options().presence}
        caller = CallContext(session_id=session_id, user=user)
        found: list[tuple[str, str]] = []
        for namespace, keys in named.items():
            cls = kept.get(namespace)
            if cls is None or not isinstance(keys, dict) or not cls.permits("read", caller):
                continue
            found.extend((namespace, key) for key, on in keys.items() if on and PRESENCE_KEY.fullmatch(key))
        return found[:MAX_LOOKED_AT]

    def attach(self, stream: LiveStream, instances: list[tuple[str, str]], ctx: CallContext) -> None:
        """Make ``stream`` a viewer of ``instances`` once it starts receiving."""
        if not instances:
            return
        stream.presence = Looking(self.service.viewer_for(ctx), secrets.token_hex(8), tuple(instances))
        stream.topics.update(presence_stream_topic(ns, key) for ns, key in instances)

    def _joined(self, stream: LiveStream) -> None:
        looking = stream.presence
        if isinstance(looking, Looking):
            for namespace, key in looking.instances:
                self.service.schedule(self.service.join(namespace, key, looking.connection, looking.viewer))

    def _left(self, stream: LiveStream) -> None:
        looking = stream.presence
        if isinstance(looking, Looking):
            for namespace, key in looking.instances:
                self.service.schedule(self.service.leave(namespace, key, looking.connection))

    async def _changed(self, namespace: str, key: str, viewers: list[Viewer]) -> None:
        html = presence_html(namespace, key, viewers, self.renderers.get(namespace))
        self.hub.push(presence_stream_topic(namespace, key), str(SSE.patch_elements(html)))
