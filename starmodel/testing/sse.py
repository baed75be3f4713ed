"""Reading Server-Sent Events as a browser does: a whole body (``parse_sse``), or a stream
event by event as it arrives (``SSEReader``), into ``SSEEvent``s.

Example::

    async with http.stream("GET", "/live", headers={"Datastar-Request": "true"}) as response:
        reader = SSEReader(response)
        first = await reader.next(timeout=5)
        assert first.type == "datastar-patch-signals" and "counter" in first.signals
        await reader.close()
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["COMMENT", "SSEEvent", "SSEReader", "parse_sse"]

COMMENT = "comment"
"""The type ``SSEReader.next(comments=True)`` gives a block of comment lines (a keep-alive)."""


@dataclass(frozen=True)
class SSEEvent:
    """One Server-Sent Event: its ``event:`` type, ``id:`` and ``data:`` lines."""

    type: str
    data: tuple[str, ...] = ()
    id: str | None = None

    @classmethod
    def parse(cls, block: str) -> SSEEvent | None:
        """The event in the text between two blank lines (``None`` for comment lines only)."""
        kind, event_id, data, seen = "message", None, [], False
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            seen = True
            if name == "event":
                kind = value
            elif name == "id":
                event_id = value
            elif name == "data":
                data.append(value)
        return cls(kind, tuple(data), event_id) if seen else None

    def values(self, name: str) -> list[str]:
        """The data lines of a Datastar field (``signals``, ``elements``, ``selector``...)
        without the field name."""
        prefix = name + " "
        return [line[len(prefix) :] for line in self.data if line.startswith(prefix)]

    def value(self, name: str) -> str | None:
        found = self.values(name)
        return "\n".join(found) if found else None

    @property
    def signals(self) -> dict[str, Any]:
        """The signals a ``datastar-patch-signals`` event patches, as sent (``ValueError`` for
        another event: a test reading them from the wrong one fails)."""
        self._expect("datastar-patch-signals")
        loaded = json.loads(self.value("signals") or "null")
        if not isinstance(loaded, dict):
            raise ValueError(f"this event patches no signals object: {self!r}")
        return loaded

    @property
    def elements(self) -> str:
        """The HTML a ``datastar-patch-elements`` event patches in (``ValueError`` for another
        event)."""
        self._expect("datastar-patch-elements")
        return self.value("elements") or ""

    def _expect(self, kind: str) -> None:
        if self.type != kind:
            raise ValueError(f"a {self.type} event, not a {kind} one: {self!r}")


def parse_sse(text: str) -> list[SSEEvent]:
    """The events of an SSE body (comment-only blocks, e.g. keep-alives, are skipped)."""
    blocks = text.replace("\r\n", "\n").split("\n\n")
    return [event for event in map(SSEEvent.parse, blocks) if event is not None]


class SSEReader:
    """Reads the events of a streaming ``httpx`` response as they arrive, with bounded waits
    (a live stream never ends by itself).

    A task of its own reads the body into a queue, so a wait that times out never stops a
    read half-way. ``comments`` counts the keep-alive blocks seen, ``ended`` tells whether the
    body has ended (or failed). ``close()`` stops reading.
    """

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments = 0
        self.ended = False
        self._queue: asyncio.Queue[SSEEvent | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        buffer = ""
        try:
            async for chunk in self.response.aiter_text():
                buffer += chunk.replace("\r\n", "\n")
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    parsed = SSEEvent.parse(block)
                    if parsed is None:
                        self.comments += 1
                        comments = tuple(line[1:].strip() for line in block.split("\n") if line)
                        parsed = SSEEvent(COMMENT, comments)
                    self._queue.put_nowait(parsed)
        except httpx.HTTPError:
            pass
        finally:
            self.ended = True
            self._queue.put_nowait(None)

    async def next(self, timeout: float = 3.0, *, comments: bool = False) -> SSEEvent:
        """The next event; with ``comments`` a block of comment lines counts too, as an event of
        type ``COMMENT`` whose data are the comments. ``TimeoutError`` if none comes within
        ``timeout`` seconds, ``EOFError`` once the body has ended."""
        async with asyncio.timeout(timeout):
            while True:
                found = await self._queue.get()
                if found is None:
                    self._queue.put_nowait(None)
                    raise EOFError("the stream ended")
                if comments or found.type != COMMENT:
                    return found

    async def nothing_within(self, seconds: float) -> bool:
        """True if no event (comments aside) arrives within ``seconds``."""
        try:
            await self.next(timeout=seconds)
        except (TimeoutError, EOFError):
            return True
        return False

    async def close(self) -> None:
        """Stop reading (the response itself is closed by whoever opened it)."""
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
