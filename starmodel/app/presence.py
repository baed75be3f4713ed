"""Presence as an application service: who looks at which instance, kept current.

The web adapter joins each open tab (a connection) to the instances its page shows and
leaves when the tab's live stream ends; this service writes that to the tracker and publishes
``PresenceChanged`` on the bus, so that every process pushes the new list to its own tabs
(``listeners``). Every ``beat`` seconds it renews this process's connections and looks again
at the instances its tabs show: connections of a process that died expire ``ttl`` seconds
after its last beat, and the next look of a surviving process (at most ``beat`` later)
pushes the shorter list. So a dead process's viewers drop out within ``ttl + beat`` seconds
(15 + 5 by default); a closed tab drops out as soon as its server sees the stream end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import ConfigurationError
from starmodel.core.ports import EventBus
from starmodel.core.presence import (
    PRESENCE_KEY,
    PresenceChanged,
    PresenceTracker,
    Viewer,
    default_viewer,
    presence_topic,
)

__all__ = ["DEFAULT_BEAT", "DEFAULT_TTL", "PresenceService", "address_of"]

log = logging.getLogger("starmodel.presence")

DEFAULT_TTL = 15.0
"""Seconds a connection stays a viewer without a beat (its process died)."""
DEFAULT_BEAT = 5.0
"""Seconds between a process's beats (renewals, and a look for expired viewers)."""
DEFAULT_GATHER = 0.02
"""Seconds the changes of one instance are gathered before its list is pushed."""

Listener = Callable[[str, str, list[Viewer]], Awaitable[None]]
Describe = Callable[[CallContext], Viewer]


class PresenceService:
    """Joins, leaves and reads presence; keeps this process's connections beating.

    Args:
        tracker: where viewers are kept (memory, or Redis for every process).
        bus: where ``PresenceChanged`` goes (and comes from, from other processes).
        ttl: seconds a connection counts without a beat.
        beat: seconds between beats; must be well under ``ttl``.
        gather: seconds a change waits for others of the same instance before its list is
            read and pushed once for all of them (a burst of tabs joining after a deploy
            costs one read and one push per process, not one per tab).
        clock: seconds now, for ``Viewer.since``.
    """

    def __init__(
        self,
        tracker: PresenceTracker,
        bus: EventBus,
        *,
        ttl: float = DEFAULT_TTL,
        beat: float = DEFAULT_BEAT,
        gather: float = DEFAULT_GATHER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < beat < ttl:
            raise ConfigurationError("presence_beat must be positive and shorter than presence_ttl")
        self.tracker = tracker
        self.bus = bus
        self.ttl = ttl
        self.beat = beat
        self.gather = gather
        self.clock = clock
        self.listeners: list[Listener] = []
        """Called with ``(namespace, key, viewers)`` when the viewers of an instance that a tab
        of this process shows may have changed (the web adapter pushes them)."""
        self._describe: Describe = default_viewer
        # what waits to be written: topic -> connection -> viewer, and topic -> connections
        self._joining: dict[str, dict[str, Viewer]] = {}
        self._leaving: dict[str, set[str]] = {}
        self._next: asyncio.Future[bool] | None = None  # done when what waits now is written
        self._writer: asyncio.Task[None] | None = None
        self._connections: dict[str, dict[str, Viewer]] = {}  # topic -> connection -> viewer (here)
        self._shown: dict[str, tuple[str, ...]] = {}  # topic -> viewer ids last given to listeners
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed: set[str] = set()  # topics whose list is to be read and pushed
        self._refresher: asyncio.Task[None] | None = None
        self._beats: asyncio.Task[None] | None = None
        self._warned = False
        bus.subscribe(PresenceChanged, self._on_changed, everywhere=True)

    # --- reading -----------------------------------------------------------------------

    async def of(self, target: type[Entity] | Entity, key: Any = None) -> list[Viewer]:
        """Who is looking at ``target`` now (an instance, or a class and a key): one entry per
        person, earliest first; ``[]`` while the tracker cannot be reached."""
        namespace, found = address_of(target, key)
        return await self._viewers(presence_topic(namespace, found))

    async def _viewers(self, topic: str) -> list[Viewer]:
        try:
            viewers = await self.tracker.viewers(topic)
        except Exception as exc:  # StoreUnavailable, or the tracker's driver error (Redis)
            self._warn(exc)
            return []
        return _one_each(viewers)

    # --- who is who --------------------------------------------------------------------

    def describe(self, fn: Describe) -> Describe:
        """Decorator: how a caller is shown to the others (``fn(ctx) -> Viewer``); the default
        is ``default_viewer``."""
        self._describe = fn
        return fn

    def viewer_for(self, ctx: CallContext) -> Viewer:
        """The viewer a tab of ``ctx`` is, starting to look now."""
        viewer = self._describe(ctx)
        return Viewer(viewer.id, viewer.name, viewer.avatar, self.clock())

    # --- joining and leaving -------------------------------------------------------------

    async def join(self, namespace: str, key: str, connection: str, viewer: Viewer) -> None:
        """``connection`` (one tab) looks at an instance: returns once written, and told to
        every process."""
        topic = presence_topic(namespace, key)
        self._connections.setdefault(topic, {})[connection] = viewer
        self._leaving.get(topic, set()).discard(connection)
        self._joining.setdefault(topic, {})[connection] = viewer
        self._start()
        await asyncio.shield(self._written())

    async def leave(self, namespace: str, key: str, connection: str) -> None:
        """``connection`` stopped looking (its tab closed or went elsewhere)."""
        topic = presence_topic(namespace, key)
        members = self._connections.get(topic)
        if members is not None:
            members.pop(connection, None)
            if not members:
                del self._connections[topic]
                self._shown.pop(topic, None)
        self._joining.get(topic, {}).pop(connection, None)
        self._leaving.setdefault(topic, set()).add(connection)
        await asyncio.shield(self._written())

    def schedule(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a join or leave in the background (live streams open and close synchronously);
        they take their place in the writes in the order scheduled."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until the joins and leaves scheduled so far are written and pushed."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _written(self) -> asyncio.Future[bool]:
        """Done once what is waiting now is written. One writer at a time takes everything
        waiting in one step (a burst of tabs is one round trip to Redis); what comes meanwhile
        goes in the next one, so the writes of one connection apply in their order."""
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._writing(), name="starmodel-presence-writes")
        return self._next

    async def _writing(self) -> None:
        while self._next is not None:
            done, self._next = self._next, None
            joining, self._joining = self._joining, {}
            leaving, self._leaving = self._leaving, {}
            ok = False
            try:
                ok = await self._write(self.tracker.update(joining, leaving, self.ttl))
                if ok:
                    for topic in joining.keys() | leaving.keys():
                        namespace, _, key = topic.partition(":")
                        await self.bus.publish(PresenceChanged(namespace, key))
                else:  # the leaves go with the next write (the beat writes the joins again)
                    for topic, gone in leaving.items():
                        self._leaving.setdefault(topic, set()).update(gone)
            finally:
                if not done.done():
                    done.set_result(ok)

    async def _write(self, pending: Awaitable[None]) -> bool:
        try:
            await pending
        except Exception as exc:  # Redis away: the next beat writes this process's viewers again
            self._warn(exc)
            return False
        if self._warned:
            self._warned = False
            log.info("presence is kept again")
        return True

    async def _on_changed(self, fact: PresenceChanged) -> None:
        """Bus subscriber (every process): the tabs here that show the instance get its list;
        the changes that come within ``gather`` seconds are read together, once."""
        topic = presence_topic(fact.namespace, fact.key)
        if topic not in self._connections:
            return
        self._changed.add(topic)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refreshing())
            self._tasks.add(self._refresher)
            self._refresher.add_done_callback(self._tasks.discard)

    async def _refreshing(self) -> None:
        while self._changed:
            await asyncio.sleep(self.gather)
            topics = [topic for topic in self._changed if topic in self._connections]
            self._changed = set()  # a change from now on is read again
            try:
                found = await self.tracker.viewers_of(topics)
            except Exception as exc:
                self._warn(exc)
                continue
            for topic in topics:
                viewers = _one_each(found.get(topic, []))
                self._shown[topic] = tuple(v.id for v in viewers)
                namespace, _, key = topic.partition(":")
                await self._tell(namespace, key, viewers)

    async def _tell(self, namespace: str, key: str, viewers: list[Viewer]) -> None:
        for listener in self.listeners:
            try:
                await listener(namespace, key, viewers)
            except Exception:
                log.exception("presence listener %r failed", listener)

    # --- beats -------------------------------------------------------------------------

    def _start(self) -> None:
        if self._beats is None or self._beats.done():
            self._beats = asyncio.get_running_loop().create_task(self._beating(), name="starmodel-presence")

    async def _beating(self) -> None:
        while self._connections:
            await asyncio.sleep(self.beat)
            await self.beat_once()

    async def beat_once(self) -> None:
        """Renew this process's connections (joined again, in the same writes as joins and
        leaves), then look at each instance its tabs show and push the lists that changed
        (viewers of a dead process expired)."""
        for topic, members in self._connections.items():
            self._joining.setdefault(topic, {}).update(members)
        if not await asyncio.shield(self._written()):
            return
        topics = list(self._connections)
        try:
            found = await self.tracker.viewers_of(topics)
        except Exception as exc:
            self._warn(exc)
            return
        for topic in topics:
            viewers = _one_each(found.get(topic, []))
            ids = tuple(v.id for v in viewers)
            if self._shown.get(topic) != ids:
                self._shown[topic] = ids
                namespace, _, key = topic.partition(":")
                await self._tell(namespace, key, viewers)

    async def stop(self) -> None:
        """The server stops: its viewers leave at once (the others see them go), beats end."""
        if self._beats is not None:
            self._beats.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._beats
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        leaving: list[Coroutine[Any, Any, None]] = []
        for topic, members in list(self._connections.items()):
            namespace, _, key = topic.partition(":")
            leaving.extend(self.leave(namespace, key, connection) for connection in list(members))
        await asyncio.gather(*leaving, return_exceptions=True)  # written together
        await self.tracker.close()

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            log.warning("presence cannot be kept right now (%s); viewers show again once it can", text)


def _one_each(viewers: list[Viewer]) -> list[Viewer]:
    """One entry per person (their earliest tab), in joining order."""
    seen: dict[str, Viewer] = {}
    for viewer in viewers:
        seen.setdefault(viewer.id, viewer)
    return list(seen.values())


def address_of(target: type[Entity] | Entity, key: Any) -> tuple[str, str]:
    """``(namespace, key)`` of an instance, checked: the class declares presence, the key is
    one presence accepts."""
    if isinstance(target, Entity):
        entity_cls: type[Entity] = type(target)
        if key is None:
            key = target.record_key() if entity_cls.options().scope == "id" else "global"
    else:
        entity_cls = target
        if key is None and entity_cls.options().scope == "global":
            key = "global"
    if not entity_cls.options().presence:
        raise ConfigurationError(
            f"{entity_cls.__name__} does not keep presence; set model_config['presence'] = True"
        )
    text = "" if key is None else str(key)
    if not PRESENCE_KEY.fullmatch(text):
        raise ConfigurationError(f"{entity_cls.__name__}: presence needs the instance's key, not {key!r}")
    return entity_cls.namespace(), text
