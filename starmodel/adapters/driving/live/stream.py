"""The per-tab live stream: one long GET per tab carrying every change made elsewhere.

Changes arrive from the bus as ``EntityChanged`` facts, become ``datastar-patch-signals``
events with ids (``<epoch>-<seq>``), and go to the streams whose topics match: ``global``
for global entities, ``session:<id>`` for that session's tabs. A reconnecting tab sends
``Last-Event-ID``; it gets what it missed from a bounded replay buffer, or a full resync.
A server that stops ends every stream with an SSE ``retry:`` hint, spread over a range so
that its tabs reconnect to the other processes over a second or two rather than all at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import secrets
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from starmodel.adapters.driving.datastar.sse import patch_signals_event, render_outputs, sse_comment
from starmodel.app.bus import delivery_position
from starmodel.core.messages import EntityChanged, EventOutputs

__all__ = ["LiveHub", "LiveStream", "close_all_live_streams"]

log = logging.getLogger("starmodel.live")
StateLoader = Callable[[str], Awaitable[dict[str, Any]]]
ExtraLoader = Callable[["LiveStream"], Awaitable[str]]
History = Callable[[str, int, int], Awaitable[list[tuple[tuple[str, int], Any]] | None]]
FactHandler = Callable[[Any], Awaitable[None]]
# set while old facts are turned into messages for one reconnecting tab: ``publish`` collects
# them here instead of sending them to every stream
_capture: ContextVar[list[tuple[str, tuple[str | None, str] | None, _Message]] | None] = ContextVar(
    "sm_live_capture", default=None
)
_HUBS: weakref.WeakSet[LiveHub] = weakref.WeakSet()
_EVENT_ID = re.compile(r"[0-9A-Za-z]{1,64}-[0-9]{1,19}")
"""The ids this hub gives (``<epoch>-<seq>``); a ``Last-Event-ID`` of another shape is ignored."""


RETRY_SPREAD = (0.5, 2.5)
"""Seconds after which the tabs of a stopping server reconnect: each gets its own pick."""


def close_all_live_streams() -> None:
    """End every open live stream in this process, each with a reconnect hint (servers call it
    when asked to stop)."""
    for hub in list(_HUBS):
        hub.close_all(retry=RETRY_SPREAD)


def topic_for(change: EntityChanged | EventOutputs) -> str:
    if change.scope == "session":
        return f"session:{change.session_id}"
    if change.scope == "global":
        return "global"
    return f"entity:{change.namespace}"


class _Message:
    """A change waiting in the replay buffer; its SSE text is built once, when first needed,
    and encoded once for every stream it goes to."""

    __slots__ = ("_body", "_data", "event_id", "raw", "signals")

    def __init__(self, event_id: str, signals: dict[str, Any], raw: str | None = None) -> None:
        self.event_id = event_id
        self.signals = signals
        self.raw = raw
        self._body: str | None = None
        self._data: bytes | None = None

    @property
    def body(self) -> str:
        if self._body is None:
            if self.raw is None:
                self._body = patch_signals_event(self.signals, event_id=self.event_id)
            else:
                self._body = _with_event_id(self.raw, self.event_id)
        return self._body

    @property
    def data(self) -> bytes:
        """``body`` as the bytes every stream is sent (the same object for all of them)."""
        if self._data is None:
            self._data = self.body.encode()
        return self._data


def _with_event_id(body: str, event_id: str) -> str:
    """Put ``id:`` on the last event of ``body`` (a reconnecting tab resumes after it)."""
    head, sep, last = body.rstrip("\n").rpartition("\n\n")
    first_line, _, rest = last.partition("\n")
    return f"{head}{sep}{first_line}\nid: {event_id}\n{rest}\n\n"


class LiveStream:
    """One tab's connection: what waits to be sent to it (bounded), and why it ended.

    An idle stream holds no queue and no wake-up flag: ``pending`` is made when a message
    waits, ``wakeup`` when a reader in this process (``LiveHub.events``) waits for one. Over
    HTTP, ``live.http.HttpLiveStream`` writes the messages as they come instead.
    """

    __slots__ = (
        "_pending",
        "_wakeup",
        "closed",
        "limit",
        "origin",
        "presence",
        "retry",
        "session_id",
        "tab_id",
        "topics",
    )

    def __init__(self, session_id: str, tab_id: str | None, topics: set[str], limit: int) -> None:
        self.session_id = session_id
        self.tab_id = tab_id
        self.origin = (session_id, tab_id) if tab_id else None
        self.topics = topics
        self.limit = limit
        self._pending: list[bytes] | None = None
        self._wakeup: asyncio.Event | None = None
        self.closed: str | None = None
        self.retry: int | None = None  # milliseconds: sent as ``retry:`` when the stream ends
        self.presence: Any = None  # who this tab is to others, if its page shows presence

    @property
    def pending(self) -> list[bytes]:
        """Messages not sent yet (SSE text), oldest first."""
        if self._pending is None:
            self._pending = []
        return self._pending

    @property
    def wakeup(self) -> asyncio.Event:
        """Set when a message arrives or the stream ends (for a reader in this process)."""
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        return self._wakeup

    def take(self) -> bytes:
        """Everything that waits, as one chunk (``b""`` if nothing does); it waits no more."""
        pending = self._pending
        if not pending:
            return b""
        self._pending = None
        return pending[0] if len(pending) == 1 else b"".join(pending)

    def drain(self) -> list[bytes]:
        """Everything that waits, message by message; it waits no more."""
        pending, self._pending = self._pending, None
        return pending or []

    def push(self, data: bytes) -> None:
        if self.closed:
            return
        pending = self._pending
        if pending is None:
            pending = self._pending = []
        elif len(pending) >= self.limit:
            log.info("live stream of tab %s dropped: it is not reading", self.tab_id)
            self.close("slow consumer")
            return
        pending.append(data)
        self._ready()

    def close(self, reason: str, *, retry: int | None = None) -> None:
        """End the stream; ``retry``: milliseconds the tab waits before it reconnects."""
        self.closed = reason
        self.retry = retry
        self._pending = None
        self._ready()

    def _ready(self) -> None:
        """A message waits, or the stream ended: wake whoever sends this stream's messages."""
        if self._wakeup is not None:
            self._wakeup.set()


class LiveHub:
    """Routes committed changes to the open live streams of this process.

    Args:
        state_loader: the current signals a tab of a session shows (for resyncs).
        extra_loader: more of a full resync, as SSE text (e.g. the record lists a tab shows).
        queue_size: backlog after which a slow tab is dropped (it resyncs on reconnect).
        replay_size: recent events kept for reconnecting tabs.
        heartbeat: seconds between keep-alive comments.
    """

    def __init__(
        self,
        state_loader: StateLoader,
        *,
        extra_loader: ExtraLoader | None = None,
        queue_size: int = 256,
        replay_size: int = 1024,
        heartbeat: float = 15.0,
    ) -> None:
        self.state_loader = state_loader
        self.extra_loader = extra_loader
        self.queue_size = queue_size
        self.heartbeat = heartbeat
        self.own_epoch = self.epoch = secrets.token_hex(4)
        self.own_seq = self.seq = 0
        # ids after ``floor`` (in ``epoch``) are all in ``replay``: a tab that saw one of them
        # can be caught up from it; an older id (or another epoch) gets a full resync
        self.floor = 0
        # the first id this process gave in ``epoch``: a tab whose last id is older saw its
        # messages from another process (or from this app before a restart), so it may hold
        # session/global state other than what this process's memory holds
        self.epoch_start = 0
        self.replay_size = replay_size
        self.replay: deque[tuple[int, str, tuple[str | None, str] | None, _Message]] = deque()
        self.streams: dict[str, set[LiveStream]] = {}
        self.closing = False
        # what turns facts into messages, and where old facts can be read again (a bus that
        # spans processes): a tab coming from another process is caught up from there
        self.fact_handlers: list[tuple[type, FactHandler]] = []
        self.history: History | None = None
        self._reading: set[LiveStream] = set()  # streams whose body is being sent
        # called (synchronously) when a stream starts receiving and when it ends: presence
        # joins and leaves the instances a tab shows
        self.on_join: list[Callable[[LiveStream], None]] = []
        self.on_leave: list[Callable[[LiveStream], None]] = []
        self._beats: asyncio.Task[None] | None = None
        _HUBS.add(self)

    @property
    def last_event_id(self) -> str:
        return f"{self.epoch}-{self.seq}"

    def open_count(self) -> int:
        return len({s for streams in self.streams.values() for s in streams})

    async def on_entity_changed(self, change: EntityChanged) -> None:
        """Bus subscriber: turn a committed change into one event for the matching tabs
        (records, ``scope="id"``, are drawn by ``live.lists.LiveLists``)."""
        if change.scope == "id":
            return
        session = change.origin_session or change.session_id
        origin = (session, change.origin_tab) if change.origin_tab else None
        self.publish(topic_for(change), {change.namespace: change.changes}, origin)

    async def on_event_outputs(self, fact: EventOutputs) -> None:
        """Bus subscriber: what a background event showed goes to every tab of the entity."""
        shown = render_outputs(fact.outputs, selector=fact.selector, mode=fact.mode)
        self.publish(topic_for(fact), {}, raw=shown)

    def publish(
        self,
        topic: str,
        signals: dict[str, Any],
        origin: tuple[str | None, str] | None = None,
        *,
        raw: str | None = None,
    ) -> None:
        """Send ``signals`` (or ready SSE text, ``raw``) to every stream on ``topic`` except the
        tab ``origin`` (``(session_id, tab_id)``) that made the change and has the answer."""
        captured = _capture.get()
        if captured is not None:  # replaying an old fact for one tab
            epoch, seq = delivery_position.get() or (self.epoch, self.seq)
            captured.append((topic, origin, _Message(f"{epoch}-{seq}", signals, raw)))
            return
        self._advance()
        message = _Message(f"{self.epoch}-{self.seq}", signals, raw)
        if len(self.replay) >= self.replay_size:
            self.floor = self.replay.popleft()[0]
        self.replay.append((self.seq, topic, origin, message))
        data = message.data
        for stream in self.streams.get(topic, ()):
            if origin is None or stream.origin != origin:
                stream.push(data)

    def push(self, topic: str, raw: str) -> None:
        """Send ready SSE text to every stream on ``topic`` now, without an id and without
        keeping it for replay (what a reconnecting tab gets afresh anyway, such as presence)."""
        data = raw.encode()
        for stream in self.streams.get(topic, ()):
            stream.push(data)

    def _advance(self) -> None:
        """The id of the next message: the bus's position when it spans processes (the same
        in every process), else this hub's own counter."""
        position = delivery_position.get()
        if position is None:
            epoch, seq = self.own_epoch, self.own_seq + 1
            self.own_seq = seq
        else:
            epoch, seq = position
        if epoch != self.epoch:  # another numbering: what came before cannot be replayed
            self.epoch, self.floor, self.epoch_start = epoch, seq - 1, seq
            self.replay.clear()
        self.seq = seq

    def resync_all(self) -> None:
        """Facts may have been missed (the bus lost Redis for a while): every open tab
        reconnects and gets a full resync."""
        self.floor = self.seq + 1
        for streams in list(self.streams.values()):
            for stream in list(streams):
                stream.close("resync")

    def close_sessions(self, ended: Callable[[str], bool], reason: str) -> None:
        """Close the streams of every session ``ended(session_id)`` picks (signed out, say):
        their tabs reconnect and are served as whoever they are now."""
        prefix = "session:"
        for topic, streams in list(self.streams.items()):
            if topic.startswith(prefix) and ended(topic[len(prefix) :]):
                for stream in list(streams):
                    stream.close(reason)

    def close_all(self, *, retry: tuple[float, float] | None = None) -> None:
        """End every stream (the server stops); with ``retry`` (seconds, low and high), each
        tab is told to reconnect after a time picked in that range."""
        self.closing = True
        if self._beats is not None:
            self._beats.cancel()
        for streams in list(self.streams.values()):
            for stream in list(streams):
                if stream.closed:  # told already (its hint stays)
                    continue
                wait = None if retry is None else round(random.uniform(*retry) * 1000)
                stream.close("server stopping", retry=wait)

    def open(
        self,
        session_id: str,
        tab_id: str | None,
        *,
        join: bool = True,
        watch: set[str] | None = None,
    ) -> LiveStream:
        """A stream for one tab (plus the record topics it ``watch``es). With ``join=False``
        it starts receiving only once it is opened (``opening``, or ``events`` iterated: what
        the web adapter uses, so that a request whose client left before reading leaves
        nothing registered)."""
        stream = LiveStream(session_id, tab_id, self.topics_for(session_id, watch), self.queue_size)
        if join:
            self._join(stream)
        return stream

    @staticmethod
    def topics_for(session_id: str, watch: set[str] | None = None) -> set[str]:
        """What a tab of ``session_id`` hears: global changes, its session's, and the record
        topics it ``watch``es."""
        return {"global", f"session:{session_id}", *(watch or ())}

    def _join(self, stream: LiveStream) -> None:
        for topic in stream.topics:
            self.streams.setdefault(topic, set()).add(stream)

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
        if seq > self.seq or seq < self.floor:
            return None
        return [
            message.body
            for item_seq, topic, origin, message in self.replay
            if item_seq > seq and topic in stream.topics and (origin is None or origin != stream.origin)
        ]

    def came_from_elsewhere(self, last_event_id: str | None) -> bool:
        """Whether a tab's last message came before this process numbered any in the bus's
        epoch (then another process, or this app before a restart, sent it)."""
        _, _, raw_seq = (last_event_id or "").partition("-")
        return raw_seq.isdigit() and int(raw_seq) < self.epoch_start

    async def missed_in_history(self, last_event_id: str | None, stream: LiveStream) -> list[str] | None:
        """Events after ``last_event_id`` for this stream, rebuilt from the bus's history (the
        tab saw them on another process, or before this one started), or ``None``."""
        if self.history is None or not last_event_id:
            return None
        epoch, _, raw_seq = last_event_id.partition("-")
        if not raw_seq.isdigit():
            return None
        facts = await self.history(epoch, int(raw_seq), self.replay_size)
        if facts is None:
            return None
        captured: list[tuple[str, tuple[str | None, str] | None, _Message]] = []
        token = _capture.set(captured)
        try:
            for position, fact in facts:
                at = delivery_position.set(position)
                try:
                    for kind, handler in self.fact_handlers:
                        if isinstance(fact, kind):
                            await handler(fact)
                finally:
                    delivery_position.reset(at)
        finally:
            _capture.reset(token)
        return [
            message.body
            for topic, origin, message in captured
            if topic in stream.topics and (origin is None or origin != stream.origin)
        ]

    async def opening(self, stream: LiveStream, last_event_id: str | None) -> str | None:
        """Join ``stream`` to its topics and build its first message: what the tab missed
        since ``last_event_id``, or a full resync. ``None`` when the hub is closing.

        Changes published meanwhile wait in the stream, to be sent after this message; if
        building it fails, the stream leaves its topics again."""
        if self.closing:
            return None
        if last_event_id is not None and not _EVENT_ID.fullmatch(last_event_id):
            last_event_id = None  # not an id of this app: the tab gets a full resync
        self._join(stream)
        try:
            for joined in self.on_join:
                joined(stream)
            missed = self.missed_since(last_event_id, stream)
            from_elsewhere = missed is not None and self.came_from_elsewhere(last_event_id)
            if missed is None:
                missed = await self.missed_in_history(last_event_id, stream)
                from_elsewhere = missed is not None
            if missed is not None and from_elsewhere:
                # the bus replays what crossed processes; state held in this process's memory
                # (after a restart, or for a tab coming from another process) is sent as it is now
                state = await self.state_loader(stream.session_id)
                if state:
                    missed.append(patch_signals_event(state))
            if missed is None:
                marker = self.last_event_id
                state = await self.state_loader(stream.session_id)
                extra = await self.extra_loader(stream) if self.extra_loader else ""
                # the id goes on even an empty patch: the tab resumes from here next time
                return patch_signals_event(state, event_id=marker) + extra
            return "".join(missed) or sse_comment("ok")
        except BaseException:
            self._forget(stream)
            raise

    def reading(self, stream: LiveStream) -> None:
        """``stream``'s first message is sent: from now on it gets heartbeats while idle."""
        self._reading.add(stream)
        self._keep_alive()

    def leave(self, stream: LiveStream) -> None:
        """``stream`` is gone (its tab left, or it ended): it gets nothing more."""
        self._reading.discard(stream)
        self._forget(stream)
        for left in self.on_leave:
            left(stream)

    async def events(self, stream: LiveStream, last_event_id: str | None) -> AsyncIterator[str]:
        """The body of one live stream read in this process (the test kit's ``watch``):
        catch-up first, then changes as they come.

        The stream joins its topics only here, so a reader that never starts leaves nothing
        registered."""
        first = await self.opening(stream, last_event_id)
        if first is None:
            return
        try:
            yield first
            self.reading(stream)
            wakeup = stream.wakeup  # pings come from one hub task, not a timer per stream
            while True:
                if stream.closed:
                    if stream.retry is not None:
                        yield f"retry: {stream.retry}\n\n"
                    return
                batch = stream.take()
                if batch:
                    yield batch.decode()
                    continue
                wakeup.clear()
                await wakeup.wait()
        finally:
            self.leave(stream)

    def _keep_alive(self) -> None:
        """Start the hub's heartbeat task if it is not running (one for all streams)."""
        if self._beats is None or self._beats.done():
            loop = asyncio.get_running_loop()
            self._beats = loop.create_task(self._heartbeats(), name="starmodel-live-pings")

    async def _heartbeats(self) -> None:
        """Every ``heartbeat`` seconds, a comment to each idle stream (keeps proxies from
        closing it, and finds tabs that left); ends when no stream is open."""
        ping = sse_comment("ping").encode()
        while self._reading and not self.closing:
            await asyncio.sleep(self.heartbeat)
            for stream in list(self._reading):
                if not stream._pending and not stream.closed:
                    stream.push(ping)
