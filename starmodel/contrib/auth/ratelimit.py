"""Counting failed sign-ins per key (client address, email) over a fixed window: in this
process's memory, or in Redis so that every server process shares the count."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starmodel.core.errors import ConfigurationError, StoreUnavailable

if TYPE_CHECKING:  # Redis's modules load only for an app that counts in Redis
    from starmodel.adapters.driven.stores.redis import RedisConnection

__all__ = [
    "Attempts",
    "FallbackAttempts",
    "MemoryAttempts",
    "RateLimit",
    "RedisAttempts",
    "address_key",
    "email_key",
]

log = logging.getLogger("starmodel.auth")


def _away_errors() -> tuple[type[BaseException], ...]:
    """What a Redis call raises while Redis is away (Redis's modules load only here)."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, StoreUnavailable)


@dataclass(frozen=True)
class RateLimit:
    """At most ``attempts`` failed sign-ins per ``window`` seconds, counted per client address
    and per email; past that, sign-in answers 429 (with ``Retry-After``) without checking."""

    attempts: int = 5
    window: float = 300.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigurationError(
                f"RateLimit: attempts must be a whole number >= 1, not {self.attempts!r}"
            )
        if isinstance(self.window, bool) or not isinstance(self.window, int | float) or self.window <= 0:
            raise ConfigurationError(
                f"RateLimit: window must be a positive number of seconds, not {self.window!r}"
            )


def address_key(address: str) -> str:
    return f"address:{address}"


def email_key(email: str) -> str:
    """Emails are counted under a digest: no address sits in clear in the counters."""
    return "email:" + hashlib.sha256(email.encode("utf-8", "replace")).hexdigest()[:32]


class Attempts(ABC):
    """The port: failures per key, each key's count starting with its first failure and
    forgotten ``limit.window`` seconds later."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit

    @abstractmethod
    async def retry_after(self, keys: Iterable[str]) -> int | None:
        """Seconds until every key of ``keys`` may try again; ``None`` if none is blocked."""

    @abstractmethod
    async def fail(self, keys: Iterable[str]) -> None:
        """Count one failure for each key."""

    @abstractmethod
    async def clear(self, key: str) -> None:
        """Forget the failures of ``key`` (after a successful sign-in)."""


class MemoryAttempts(Attempts):
    """Counts in this process (one server process, or tests); bounded in size."""

    MAX_KEYS = 100_000

    def __init__(self, limit: RateLimit) -> None:
        super().__init__(limit)
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (failures, forgotten at)

    async def retry_after(self, keys: Iterable[str]) -> int | None:
        now = time.monotonic()
        waits = []
        for key in keys:
            count, until = self._counts.get(key, (0, 0.0))
            if count >= self.limit.attempts and until > now:
                waits.append(until - now)
        return max(1, math.ceil(max(waits))) if waits else None

    async def fail(self, keys: Iterable[str]) -> None:
        now = time.monotonic()
        for key in keys:
            count, until = self._counts.get(key, (0, 0.0))
            if until <= now:
                count, until = 0, now + self.limit.window
            self._counts[key] = (count + 1, until)
        if len(self._counts) > self.MAX_KEYS:
            self._prune(now)

    async def clear(self, key: str) -> None:
        self._counts.pop(key, None)

    def _prune(self, now: float) -> None:
        """Drop expired counts; if a flood of keys leaves too many, the oldest go first."""
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        if len(self._counts) > self.MAX_KEYS:
            kept = sorted(self._counts.items(), key=lambda item: item[1][1])[-self.MAX_KEYS // 2 :]
            self._counts = dict(kept)


class RedisAttempts(Attempts):
    """Counts in Redis under ``<prefix>:auth:fail:<key>`` (the app's ``redis_prefix``):
    ``SET NX PX`` starts a key's window and ``INCR`` counts, in one transaction, so a count
    never lacks its expiry. Calls are bounded like the stores' (``StoreUnavailable`` when
    Redis does not answer in time, at once while it is known to be away)."""

    def __init__(self, limit: RateLimit, redis: RedisConnection) -> None:
        super().__init__(limit)
        self.redis = redis

    @property
    def client(self) -> Any:
        return self.redis.client  # the app's client: made on first use, again after a restart

    def _key(self, key: str) -> str:
        return f"{self.redis.prefix}:auth:fail:{key}"

    async def retry_after(self, keys: Iterable[str]) -> int | None:
        names = [self._key(key) for key in keys]
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.get(name)
            pipe.pttl(name)
        replies = await self.redis.call(pipe.execute())
        waits = [
            int(ttl) / 1000
            for count, ttl in zip(replies[::2], replies[1::2], strict=True)
            if count is not None and int(count) >= self.limit.attempts and int(ttl) > 0
        ]
        return max(1, math.ceil(max(waits))) if waits else None

    async def fail(self, keys: Iterable[str]) -> None:
        window_ms = max(1, int(self.limit.window * 1000))
        pipe = self.client.pipeline(transaction=True)
        for key in keys:
            pipe.set(self._key(key), 0, nx=True, px=window_ms)
            pipe.incr(self._key(key))
        await self.redis.call(pipe.execute())

    async def clear(self, key: str) -> None:
        await self.redis.call(self.client.delete(self._key(key)))


class FallbackAttempts(Attempts):
    """Redis while it answers; this process's memory while it does not (one warning per
    outage, Redis tried again every ``retry_every`` seconds). Never an error for the caller."""

    def __init__(self, primary: Attempts, fallback: Attempts, *, retry_every: float = 30.0) -> None:
        super().__init__(primary.limit)
        self.primary = primary
        self.fallback = fallback
        self.retry_every = retry_every
        self._down_until = 0.0
        self._down = False
        self._away = _away_errors()

    def _use_primary(self) -> bool:
        return not self._down or time.monotonic() >= self._down_until

    def _lost(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_every
        if not self._down:
            self._down = True
            detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            if not isinstance(exc, StoreUnavailable):  # its message says what is unreachable
                detail = f"Redis unreachable ({detail})"
            log.warning("%s: failed sign-ins are counted per process until it is back", detail)

    def _back(self) -> None:
        if self._down:
            self._down = False
            log.info("Redis is back: failed sign-ins are counted in Redis again")

    async def retry_after(self, keys: Iterable[str]) -> int | None:
        keys = list(keys)
        if self._use_primary():
            try:
                found = await self.primary.retry_after(keys)
                self._back()
                return found
            except self._away as exc:
                self._lost(exc)
        return await self.fallback.retry_after(keys)

    async def fail(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if self._use_primary():
            try:
                await self.primary.fail(keys)
                self._back()
                return
            except self._away as exc:
                self._lost(exc)
        await self.fallback.fail(keys)

    async def clear(self, key: str) -> None:
        await self.fallback.clear(key)
        if self._use_primary():
            try:
                await self.primary.clear(key)
                self._back()
            except self._away as exc:
                self._lost(exc)
