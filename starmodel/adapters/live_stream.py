"""The per-tab live stream: one long GET per tab carrying every change made elsewhere.

Changes arrive from the bus as ``EntityChanged`` facts, become ``datastar-patch-signals``
events with ids (``<epoch>-<seq>``), and go to the streams whose topics match: ``global``
for global entities, ``session:<id>`` for that session's tabs. A reconnecting tab sends
``Last-Event-ID``; it gets what it missed from a bounded replay buffer, or a full resync.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starmodel.adapters.sse_datastar import patch_signals_event, sse_comment
from starmodel.core.messages import EntityChanged

__all__ = ["LiveHub", "LiveStream", "close_all_live_streams"]

log = logging.getLogger("starmodel.live")
StateLoader = Callable[[str], Awaitable[dict[str, Any]]]
_HUBS: weakref.WeakSet[LiveHub] = weakref.WeakSet()


def close_all_live_streams() -> None:
    """End every open live stream in this process (servers call it when asked to stop)."""
    for hub in list(_HUBS):
        hub.close_all()


def topic_for(change: EntityChanged) -> str:
    if change.scope == "session":
        return f"session:{change.session_id}"
    if change.scope == "global":
        return "global"
    return f"entity:{change.namespace}"


class LiveStream:
    """One tab's connection: a bounded backlog and a wake-up flag."""

    __slots__ = ("closed", "limit", "pending", "session_id", "tab_id", "topics", "wakeup")

    def __init__(self, session_id: str, tab_id: str | None, topics: set[str], limit: int) -> None:
        self.session_id = session_id
        self.tab_id = tab_id
        self.topics = topics
        self.limit = limit
        self.pending: deque[str] = deque()
        self.wakeup = asyncio.Event()
        self.closed: str | None = None

    def push(self, body: str) -> None:
        if self.closed:
            return
        if len(self.pending) >= self.limit:
            log.info("live stream of tab %s dropped: it is not reading", self.tab_id)
            self.close("slow consumer")
            return
        self.pending.append(body)
        self.wakeup.set()

    def close(self, reason: str) -> None:
        self.closed = reason
        self.pending.clear()
        self.wakeup.set()


class LiveHub:
    """Routes committed changes to the open live streams of this process.

    Args:
        state_loader: the current signals a tab of a session shows (for resyncs).
        queue_size: backlog after which a slow tab is dropped (it resyncs on reconnect).
        replay_size: recent events kept for reconnecting tabs.
        heartbeat: seconds between keep-alive comments.
    """

    def __init__(
        self,
        state_loader: StateLoader,
        *,
        queue_size: int = 256,
        replay_size: int = 1024,
        heartbeat: float = 15.0,
    ) -> None:
        self.state_loader = state_loader
        self.queue_size = queue_size
        self.heartbeat = heartbeat
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        self.replay: deque[tuple[int, str, str | None, str]] = deque(maxlen=replay_size)
        self.streams: dict[str, set[LiveStream]] = {}
        self.closing = False
        _HUBS.add(self)

    @property
    def last_event_id(self) -> str:
        return f"{self.epoch}-{self.seq}"

    def open_count(self) -> int:
        return len({s for streams in self.streams.values() for s in streams})

    async def on_entity_changed(self, change: EntityChanged) -> None:
        """Bus subscriber: turn a committed change into one event for the matching tabs."""
        self.publish(topic_for(change), {change.namespace: change.changes}, change.origin_tab)

    def publish(self, topic: str, signals: dict[str, Any], origin_tab: str | None = None) -> None:
        self.seq += 1
        body = patch_signals_event(signals, event_id=f"{self.epoch}-{self.seq}")
        self.replay.append((self.seq, topic, origin_tab, body))
        for stream in self.streams.get(topic, ()):
            if origin_tab is None or stream.tab_id != origin_tab:
                stream.push(body)

    def close_all(self) -> None:
        self.closing = True
        for streams in list(self.streams.values()):
            for stream in list(streams):
                stream.close("server stopping")

    def open(self, session_id: str, tab_id: str | None) -> LiveStream:
        topics = {"global", f"session:{session_id}"}
        stream = LiveStream(session_id, tab_id, topics, self.queue_size)
        for topic in topics:
            self.streams.setdefault(topic, set()).add(stream)
        return stream

    def _forget(self, stream: LiveStream) -> None:
        for topic in stream.topics:
            members = self.streams.get(topic)
            if members is not None:
                members.discard(stream)
                if not members:
                    del self.streams[topic]

    def missed_since(self, last_event_id: str | None, stream: LiveStream) -> list[str] | None:
        """Events after ``last_event_id`` for this stream, or ``None`` if a resync is needed."""
        if not last_event_id:
            return None
        epoch, _, raw_seq = last_event_id.partition("-")
        if epoch != self.epoch or not raw_seq.isdigit():
            return None
        seq = int(raw_seq)
        if seq > self.seq:
            return None
        oldest = self.replay[0][0] if self.replay else self.seq + 1
        if seq < oldest - 1:
            return None
        return [
            body
            for item_seq, topic, origin, body in self.replay
            if item_seq > seq
            and topic in stream.topics
            and (origin is None or origin != stream.tab_id)
        ]

    async def events(self, stream: LiveStream, last_event_id: str | None) -> AsyncIterator[str]:
        """The body of one live stream: catch-up first, then changes as they come."""
        try:
            if self.closing:
                return
            missed = self.missed_since(last_event_id, stream)
            if missed is None:
                marker = self.last_event_id
                state = await self.state_loader(stream.session_id)
                yield patch_signals_event(state, event_id=marker) if state else sse_comment("ok")
            else:
                yield "".join(missed) or sse_comment("ok")
            while True:
                try:
                    await asyncio.wait_for(stream.wakeup.wait(), self.heartbeat)
                except TimeoutError:
                    yield sse_comment("ping")
                    continue
                stream.wakeup.clear()
                if stream.closed:
                    return
                batch = "".join(stream.pending)
                stream.pending.clear()
                yield batch
        finally:
            self._forget(stream)
