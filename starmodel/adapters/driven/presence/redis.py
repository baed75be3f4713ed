"""The presence tracker of every process sharing one Redis.

Per instance, two keys under the app's prefix: a sorted set
``<prefix>:_presence:<namespace>:<key>`` (connection -> expiry, in milliseconds since the
epoch) and a hash ``...:who`` (connection -> the viewer as JSON). Joining and beating set the
expiry; reading drops the expired connections first, in one script. Both keys expire on their
own a while after the last beat, so an instance nobody looks at leaves nothing behind. A
process that dies stops beating: its connections expire ``ttl`` seconds later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from starmodel.core.presence import PresenceTracker, Viewer

if TYPE_CHECKING:
    from starmodel.adapters.driven.stores.redis import RedisConnection

__all__ = ["RedisPresenceTracker"]

# KEYS: the sorted set, the hash. ARGV: now (ms). Drops expired members, returns the others'
# viewers as JSON, oldest first.
_VIEWERS = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('HDEL', KEYS[2], unpack(gone))
end
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
if #members == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(members))
"""


class RedisPresenceTracker(PresenceTracker):
    """Viewers in Redis, shared by every server process of the app.

    Args:
        connection: the app's Redis (its prefix and timeouts).
        clock: seconds now (``time.time``): the processes' clocks are assumed in step (NTP).
    """

    def __init__(self, connection: RedisConnection, clock: Callable[[], float] = time.time) -> None:
        self.connection = connection
        self.clock = clock
        self._script: Any = None
        self._script_client: Any = None

    def _keys(self, topic: str) -> tuple[str, str]:
        base = f"{self.connection.prefix}:_presence:{topic}"
        return base, f"{base}:who"

    async def update(
        self,
        joined: Mapping[str, Mapping[str, Viewer]],
        left: Mapping[str, Collection[str]],
        ttl: float,
    ) -> None:
        if not joined and not left:
            return
        expires = int((self.clock() + ttl) * 1000)
        keep = int(ttl * 2000)  # the keys outlive their last beat by a ttl
        pipe = self.connection.client.pipeline(transaction=False)  # one round trip
        for topic, connections in joined.items():
            if not connections:
                continue
            members, who = self._keys(topic)
            pipe.zadd(members, dict.fromkeys(connections, expires))
            pipe.hset(who, mapping={c: json.dumps(v.to_json()) for c, v in connections.items()})
            pipe.pexpire(members, keep)
            pipe.pexpire(who, keep)
        for topic, gone in left.items():
            if gone:
                members, who = self._keys(topic)
                pipe.zrem(members, *gone)
                pipe.hdel(who, *gone)
        await self.connection.call(pipe.execute())

    def _viewers_script(self) -> Any:
        client = self.connection.client  # made on first use, again after a restart
        if self._script_client is not client:
            self._script, self._script_client = client.register_script(_VIEWERS), client
        return self._script

    async def viewers(self, topic: str) -> list[Viewer]:
        script = self._viewers_script()
        now = int(self.clock() * 1000)
        return _decoded(await self.connection.call(script(keys=list(self._keys(topic)), args=[now])))

    async def viewers_of(self, topics: list[str]) -> dict[str, list[Viewer]]:
        if not topics:
            return {}
        script = self._viewers_script()
        now = int(self.clock() * 1000)
        pipe = self.connection.client.pipeline(transaction=False)
        for topic in topics:
            await script(keys=list(self._keys(topic)), args=[now], client=pipe)  # queued
        found = await self.connection.call(pipe.execute())
        return {topic: _decoded(each) for topic, each in zip(topics, found, strict=True)}


def _decoded(found: Any) -> list[Viewer]:
    """Viewers from the script's answer (JSON each), oldest first; unreadable ones skipped."""
    viewers = []
    for raw in found or []:
        if not raw:
            continue
        try:
            viewers.append(Viewer.from_json(json.loads(raw)))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(viewers, key=lambda v: v.since)
