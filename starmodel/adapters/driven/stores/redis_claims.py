"""Exclusive background runs across processes: one Redis key per running ``(entity, event)``.

``SET <prefix>:run:<namespace>:<key>:<event> <process token> NX PX <ttl>`` claims a run; the
running process renews the expiry while it runs and deletes the key (only if still its own)
when the run ends. A process that dies mid-run leaves a key that expires within ``ttl``.
"""

from __future__ import annotations

import secrets
from typing import Any

from starmodel.adapters.driven.stores.redis import RedisConnection

__all__ = ["RedisRunClaims"]

Slot = tuple[str, str, str]

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisRunClaims:
    """``RunClaims`` shared by every process on one Redis (see the module docstring).

    Args:
        connection: the app's Redis.
        ttl: seconds a claim lives without renewal (renew well within it).
    """

    def __init__(self, connection: RedisConnection, ttl: float = 30.0) -> None:
        self.connection = connection
        self.ttl_ms = int(ttl * 1000)
        self.renew_every = ttl / 3
        self.token = secrets.token_hex(8)
        self._release: Any = None

    def key(self, slot: Slot) -> str:
        namespace, key, event = slot
        return f"{self.connection.prefix}:run:{namespace}:{key}:{event}"

    async def claim(self, slot: Slot) -> bool:
        claimed = self.connection.client.set(self.key(slot), self.token, nx=True, px=self.ttl_ms)
        return bool(await self.connection.call(claimed))

    async def renew(self, slot: Slot) -> None:
        client = self.connection.client
        await self.connection.call(client.set(self.key(slot), self.token, xx=True, px=self.ttl_ms))

    async def release(self, slot: Slot) -> None:
        if self._release is None:
            self._release = self.connection.client.register_script(_RELEASE)
        await self.connection.call(self._release(keys=[self.key(slot)], args=[self.token]))

    async def held(self, slot: Slot) -> bool:
        return bool(await self.connection.call(self.connection.client.exists(self.key(slot))))
