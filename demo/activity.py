"""The demo's "recent activity" feed: a Redis entity, so every server process shares it.

With ``REDIS_URL`` set, ``Activity`` lives in Redis with a TTL: the feed is forgotten ten
minutes after its last entry (each write refreshes the TTL). Without it the demo runs as one
process with no Redis at all, and the feed is kept in memory (same TTL). It is fed
by a bus subscriber: when the shared counter or a todo changes, ``note_activity`` runs the
feed's ``log`` event, once, in the process where the change happened; the change then reaches
every tab on every process like any other.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from datastar_py import attribute_generator as data
from fasthtml.common import P, Pre
from monsterui.all import H3, Button, Card, DivLAligned, TextPresets

from starmodel import Entity, EntityChanged, StarModelError, StateStore, event

__all__ = ["FEED_SIZE", "SHARED_STORE", "Activity", "activity_card", "describe", "follow_activity"]

FEED_SIZE = 8
SHARED_STORE = StateStore.SERVER_REDIS if os.environ.get("REDIS_URL") else StateStore.SERVER_MEMORY
"""Where the demo keeps what every visitor shares: Redis when there is one (several server
processes then share it), else this process's memory."""
log = logging.getLogger("demo.activity")


class Activity(Entity):
    """The last few things that happened, shared by everybody, kept in Redis for 10 minutes."""

    model_config = {"store": SHARED_STORE, "scope": "global", "ttl": 600}

    entries: list[str] = []

    @event
    def log(self, text: str) -> None:
        """Put ``text`` (with the time) at the top of the feed."""
        stamped = f"{time.strftime('%H:%M:%S')}  {text[:120]}"
        self.entries = [stamped, *self.entries][:FEED_SIZE]

    @event
    def clear(self) -> None:
        self.entries = []


def describe(change: EntityChanged) -> str | None:
    """A feed line for a committed change, or ``None`` for changes the feed ignores."""
    if change.namespace == "shared_counter" and "count" in change.changes:
        return f"Shared counter is now {change.changes['count']}"
    if change.namespace == "todo":
        if change.deleted:
            return f"Todo #{change.key} deleted"
        if change.created:
            return f"Todo added: {change.changes.get('title', '')}"
        if "done" in change.changes:
            return f"Todo #{change.key} {'done' if change.changes['done'] else 'reopened'}"
    return None


def follow_activity(sm: Any) -> None:
    """Feed ``Activity`` from the bus (once per change, in the process that made it)."""

    async def note_activity(change: EntityChanged) -> None:
        text = describe(change)
        if text is None:
            return
        try:
            await sm.call(Activity, "log", text=text)
        except StarModelError as exc:  # e.g. Redis down: the change itself is already saved
            log.warning("activity not recorded: %s", exc)

    sm.subscribe(EntityChanged, note_activity)


def activity_card(activity: Activity | None) -> Any:
    """The feed, kept current through the signal ``$activity.entries``."""
    if activity is None:
        body: Any = P("Recent activity is kept in Redis, which cannot be reached right now.",
                      id="activity-unavailable", cls=TextPresets.muted_sm)
    else:
        body = Pre(
            "\n".join(activity.entries) or "Nothing yet.",
            data.text(f"{Activity.sig.entries}.join('\\n') || 'Nothing yet.'"),
            id="activity-feed", cls="text-sm whitespace-pre-wrap",
        )
    return Card(
        *([activity] if activity is not None else []),
        body,
        DivLAligned(Button("Clear", data.on("click", Activity.clear()), id="activity-clear")),
        header=H3("Recent activity"),
        footer=P("With REDIS_URL: a Redis entity with a TTL, shared by every server process.",
                 cls=TextPresets.muted_sm),
    )
