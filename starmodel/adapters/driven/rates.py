"""Where calls of rate-limited events are counted (the ``CallCounter`` port): in this
process's memory, or in Redis so that every server process shares the count, falling back to
memory while Redis is away."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starmodel.core.errors import StoreUnavailable
from starmodel.core.rates import CallCounter, Rate

if TYPE_CHECKING:  # importing StarModel loads no Redis module until Redis is used
    from starmodel.adapters.driven.stores.redis import RedisConnection

__all__ = ["FallbackCallCounter", "MemoryCallCounter", "RedisCallCounter", "call_counter"]

log = logging.getLogger("starmodel.rates")

# One round trip, atomic: count the call and give the window its end on the first one; an
# existing key keeps its expiry, so refused calls never lengthen the window.
_COUNT = """
local calls = redis.call('INCR', KEYS[1])
if calls == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); left = tonumber(ARGV[1]) end
return {calls, left}
"""


class MemoryCallCounter(CallCounter):
    """Counts in this process (one server process, or tests); bounded in size."""

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (calls, window ends at)

    async def count(self, key: str, rate: Rate) -> tuple[int, float]:
        now = time.monotonic()
        calls, ends = self._counts.get(key, (0, 0.0))
        if ends <= now:
            calls, ends = 0, now + rate.seconds
        self._counts[key] = (calls + 1, ends)
        if len(self._counts) > self.MAX_KEYS:
            self._prune(now)
        return calls + 1, ends - now

    def _prune(self, now: float) -> None:
        """Drop ended windows; if a flood of callers leaves too many, the oldest go first."""
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        if len(self._counts) > self.MAX_KEYS:
            kept = sorted(self._counts.items(), key=lambda item: item[1][1])[-self.MAX_KEYS // 2 :]
            self._counts = dict(kept)


class RedisCallCounter(CallCounter):
    """Counts in Redis under ``<prefix>:rate:<key>`` (the app's ``redis_prefix``), with one
    atomic script per call (``INCR``, and ``PEXPIRE`` on a window's first call). Calls are
    bounded like the stores' (``StoreUnavailable`` when Redis does not answer in time)."""

    def __init__(self, redis: RedisConnection) -> None:
        self.redis = redis
        self._script: Any = None
        self._script_client: Any = None

    def _key(self, key: str) -> str:
        return f"{self.redis.prefix}:rate:{key}"

    async def count(self, key: str, rate: Rate) -> tuple[int, float]:
        client = self.redis.client  # made on first use, again after a restart
        if self._script_client is not client:
            self._script, self._script_client = client.register_script(_COUNT), client
        calls, left_ms = await self.redis.call(
            self._script(keys=[self._key(key)], args=[rate.seconds * 1000])
        )
        return int(calls), max(int(left_ms), 0) / 1000


class FallbackCallCounter(CallCounter):
    """Redis while it answers; this process's memory while it does not (one warning per
    outage, Redis tried again every ``retry_every`` seconds): a Redis outage never refuses
    or fails events that do not need Redis."""

    def __init__(self, primary: CallCounter, fallback: CallCounter, *, retry_every: float = 30.0) -> None:
        self.primary = primary
        self.fallback = fallback
        self.retry_every = retry_every
        self._down_until = 0.0
        self._down = False

    async def count(self, key: str, rate: Rate) -> tuple[int, float]:
        from redis.exceptions import RedisError

        if not self._down or time.monotonic() >= self._down_until:
            try:
                found = await self.primary.count(key, rate)
            except (RedisError, OSError, StoreUnavailable) as exc:  # Redis is away
                self._down_until = time.monotonic() + self.retry_every
                if not self._down:
                    self._down = True
                    text = str(exc).strip()
                    detail = text.splitlines()[0][:160] if text else type(exc).__name__
                    if not isinstance(exc, StoreUnavailable):  # its message names what is away
                        detail = f"Redis unreachable ({detail})"
                    log.warning("%s: event rates are counted per process until it is back", detail)
            else:
                if self._down:
                    self._down = False
                    log.info("Redis is back: event rates are counted in Redis again")
                return found
        return await self.fallback.count(key, rate)


def call_counter(redis_url: str | None, redis: Callable[[], RedisConnection]) -> CallCounter:
    """Counting in Redis (``redis()``, with memory while it is away) when the app has
    ``REDIS_URL``, else in memory."""
    if not redis_url:
        return MemoryCallCounter()
    return FallbackCallCounter(RedisCallCounter(redis()), MemoryCallCounter())
