"""``SERVER_REDIS``: entities as JSON in Redis, shared by every server process.

Key scheme (``prefix`` is ``sm`` unless ``STARMODEL_REDIS_PREFIX`` says otherwise):

- ``<prefix>:<namespace>:<key>``: a hash per entity with ``v`` (version, an integer),
  ``d`` (the entity's fields as JSON) and ``o`` (the owning session of a private record,
  else empty). Its TTL is the entity's ``ttl``, refreshed on every save.
- ``<prefix>:<namespace>``: a sorted set of the class's keys (all with score 0, so in key
  order), for ``list``. Members whose hash has expired are dropped when a list meets them.

One repository per unit of work. Reads go to Redis at once; writes wait in the repository
and are applied together at ``commit`` by one Lua script, which first checks that every
written entity still has the version this unit read (else ``ConcurrencyError`` and nothing
is written). So a unit of work is atomic, and two processes changing one entity at once
never lose a write: the loser re-runs its event on fresh state. That check-and-write is the
repository's whole commit protocol (``decides_at_commit``): the unit of work commits Redis
before the stores it has prepared, so a refusal here leaves nothing of the event saved.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError
from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from starmodel.adapters.driven.breaker import CircuitBreaker
from starmodel.core.entity import Entity
from starmodel.core.errors import ConcurrencyError, ConfigurationError, CorruptData, StoreUnavailable
from starmodel.core.ports import EntityRepository

__all__ = ["DEFAULT_REDIS_URL", "RedisConnection", "RedisRepository", "check_redis_url"]

E = TypeVar("E", bound=Entity)
T = TypeVar("T")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_LIST_BATCH = 100
_OUTAGES = (RedisConnectionError, RedisTimeoutError, OSError)  # errors that mean Redis is away

# KEYS: the hashes and index sets touched; ARGV[1]: the operations as JSON, each
# {k: hash KEYS index, i: index KEYS index, m: index member, e: version expected in Redis
# (-1: don't check), t: "s" save / "d" delete, v: new version, d: JSON, o: owner, x: ttl ms}.
# Returns 0; the 1-based number of the first operation whose version check failed; or minus the
# KEYS index of a key holding another type of value (checked before anything is written).
_COMMIT = """
local ops = cjson.decode(ARGV[1])
for n, op in ipairs(ops) do
  local kind = redis.call('TYPE', KEYS[op.k]).ok
  if kind ~= 'hash' and kind ~= 'none' then return -op.k end
  kind = redis.call('TYPE', KEYS[op.i]).ok
  if kind ~= 'zset' and kind ~= 'none' then return -op.i end
  if op.e >= 0 then
    local v = tonumber(redis.call('HGET', KEYS[op.k], 'v') or '0')
    if v ~= op.e then return n end
  end
end
for _, op in ipairs(ops) do
  if op.t == 'd' then
    redis.call('DEL', KEYS[op.k])
    redis.call('ZREM', KEYS[op.i], op.m)
  else
    redis.call('HSET', KEYS[op.k], 'v', op.v, 'd', op.d, 'o', op.o)
    if op.x > 0 then
      redis.call('PEXPIRE', KEYS[op.k], op.x)
    else
      redis.call('PERSIST', KEYS[op.k])
    end
    redis.call('ZADD', KEYS[op.i], 0, op.m)
  end
end
return 0
"""


def check_redis_url(url: str) -> str:
    """``url`` if it is a Redis URL, else a ``ConfigurationError`` saying what is expected."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ConfigurationError(
            f"REDIS_URL {url!r} is not a Redis URL (e.g. redis://127.0.0.1:6379/0)"
        )
    try:
        aioredis.ConnectionPool.from_url(url)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"REDIS_URL {url!r}: {exc}") from None
    return url


def where(url: str) -> str:
    """Host and port of a Redis URL, without credentials (for messages)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else url


class RedisConnection:
    """One Redis server: a client with a connection pool, created on first use (never at
    import time) and shared by every repository of the app (and the bus).

    Every call goes through ``call``: bounded by ``timeout`` seconds, and refused at once while
    the server's circuit breaker is open (after a call timed out or lost its connection), so a
    frozen Redis answers events with a 503 within one timeout instead of making them queue;
    the pool reconnects by itself when Redis is back.
    """

    def __init__(
        self,
        url: str = DEFAULT_REDIS_URL,
        *,
        prefix: str = "sm",
        timeout: float = 1.5,
        probe_interval: float = 1.0,
    ) -> None:
        self.url = check_redis_url(url)
        self.prefix = prefix
        self.timeout = timeout
        self.breaker = CircuitBreaker(
            f"Redis at {where(self.url)}", self._probe, timeout=timeout, interval=probe_interval
        )
        self._client: aioredis.Redis | None = None
        self._commit_script: Any = None

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self.url,
                decode_responses=True,
                socket_connect_timeout=self.timeout,
                socket_timeout=self.timeout,
                health_check_interval=30,
            )
            self._commit_script = self._client.register_script(_COMMIT)
        return self._client

    @property
    def commit_script(self) -> Any:
        _ = self.client
        return self._commit_script

    def record_key(self, namespace: str, key: str) -> str:
        return f"{self.prefix}:{namespace}:{key}"

    def index_key(self, namespace: str) -> str:
        return f"{self.prefix}:{namespace}"

    async def call(self, pending: Awaitable[T], *, timeout: float | None = None) -> T:
        """Await a Redis call within ``timeout`` seconds (default: the store timeout); an
        outage (no answer in time, connection lost or refused) opens the breaker and raises
        ``StoreUnavailable``, as does any call while it is open."""
        return await self.breaker.call(pending, timeout=timeout, outages=_OUTAGES)

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` (one clear line) unless Redis answers."""
        await self.call(self.client.ping())

    async def claim_tick(self, job: str, tick: int, interval: float) -> bool:
        """Whether this process runs tick ``tick`` of periodic job ``job`` (the first to ask
        does; the claim expires on its own)."""
        key = f"{self.prefix}:job:{job}:{tick}"
        ttl_ms = max(1000, int(interval * 2000))
        return bool(await self.call(self.client.set(key, "1", nx=True, px=ttl_ms)))

    async def close(self) -> None:
        await self.breaker.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _probe(self) -> None:
        await self.client.ping()


@dataclass
class _Write:
    """A write waiting for commit: the final state of one entity in this unit of work."""

    namespace: str
    key: str
    expected: int  # the version Redis must still have (-1: don't check)
    version: int  # the version after this unit (0 for a delete)
    data: str | None  # JSON, or None for a delete
    owner: str
    ttl_ms: int


class RedisRepository(EntityRepository):
    """A unit of work's view of Redis (see the module docstring)."""

    decides_at_commit = True

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self._writes: dict[tuple[str, str], _Write] = {}
        self._read: dict[tuple[str, str], int] = {}  # versions this unit has seen in Redis

    # --- reads --------------------------------------------------------------------------

    async def get(self, entity_cls: type[E], key: str) -> E | None:
        slot = (entity_cls.namespace(), key)
        pending = self._writes.get(slot)
        if pending is not None:
            if pending.data is None:
                return None
            return self._entity(entity_cls, key, pending.version, pending.data, pending.owner)
        redis_key = self.connection.record_key(*slot)
        fields = await self._call(self.connection.client.hgetall(redis_key), redis_key)
        found = self._decode(entity_cls, key, fields)
        self._read[slot] = found._sm_version if found is not None else 0
        return found

    async def list(
        self, entity_cls: type[E], *, offset: int = 0, limit: int = 50, owner: str | None = None
    ) -> list[E]:
        if limit <= 0:
            return []
        namespace = entity_cls.namespace()
        client = self.connection.client
        index = self.connection.index_key(namespace)
        stored: list[str] = await self._call(client.zrange(index, 0, -1), index)
        mine = {k for (ns, k) in self._writes if ns == namespace}
        keys = sorted(set(stored) | mine)
        found: list[E] = []
        skipped = 0
        gone: list[str] = []
        for start in range(0, len(keys), _LIST_BATCH):
            batch = keys[start:start + _LIST_BATCH]
            remote = [k for k in batch if (namespace, k) not in self._writes]
            pipe = client.pipeline(transaction=False)
            for k in remote:
                pipe.hgetall(self.connection.record_key(namespace, k))
            answers = await self._call(pipe.execute(raise_on_error=False))
            for k, answer in zip(remote, answers, strict=True):
                if isinstance(answer, ResponseError):
                    raise _corrupt(self.connection.record_key(namespace, k),
                                   "it holds another type of Redis value, not a hash")
            values = dict(zip(remote, answers, strict=True))
            for k in batch:
                if k in values:
                    entity = self._decode(entity_cls, k, values[k])
                    if entity is None:
                        gone.append(k)
                        continue
                else:
                    entity = await self.get(entity_cls, k)
                    if entity is None:
                        continue
                if owner is not None and entity._sm_owner != owner:
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                found.append(entity)
                if len(found) >= limit:
                    break
            if len(found) >= limit:
                break
        if gone:  # expired by their TTL: their index entries go too
            await self._call(client.zrem(index, *gone))
        return found

    # --- writes (applied at commit) -------------------------------------------------------

    async def save(self, entity: Entity) -> None:
        cls = type(entity)
        identity = entity.__pydantic_private__
        assert identity is not None
        key = identity["_sm_key"]
        if key is None:
            if cls.options().scope != "id":
                raise ValueError(f"{cls.__name__} has no key; load it through a repository first")
            key = identity["_sm_key"] = uuid.uuid4().hex
        slot = (cls.namespace(), key)
        version = identity["_sm_version"]
        current = await self._current_version(slot)
        if current != version:
            raise ConcurrencyError(
                f"{cls.__name__} {key!r} changed meanwhile (version {current}, expected {version})"
            )
        previous = self._writes.get(slot)
        expected = previous.expected if previous else self._read.get(slot, version)
        ttl = cls.options().ttl
        self._writes[slot] = _Write(
            slot[0], key, expected, version + 1, _stored_json(entity),
            entity._sm_owner or "", int(ttl * 1000) if ttl else 0,
        )
        identity["_sm_version"] = version + 1

    async def delete(self, entity_cls: type[Entity], key: str) -> bool:
        slot = (entity_cls.namespace(), key)
        current = await self._current_version(slot)
        if current == 0:
            return False
        previous = self._writes.get(slot)
        expected = previous.expected if previous else -1
        self._writes[slot] = _Write(slot[0], key, expected, 0, None, "", 0)
        return True

    async def _current_version(self, slot: tuple[str, str]) -> int:
        """The version of ``slot`` as this unit of work sees it (0: absent)."""
        pending = self._writes.get(slot)
        if pending is not None:
            return pending.version
        seen = self._read.get(slot)
        if seen is not None:  # read by this unit: the commit script checks it again
            return seen
        redis_key = self.connection.record_key(*slot)
        raw = await self._call(self.connection.client.hget(redis_key, "v"), redis_key)
        version = _int_or_none(raw)
        if raw is not None and version is None:
            raise _corrupt(self.connection.record_key(*slot), "its version is not a number")
        self._read[slot] = version or 0
        return version or 0

    # --- transaction hooks --------------------------------------------------------------

    async def begin(self) -> None:
        self._writes.clear()
        self._read.clear()

    async def commit(self) -> None:
        writes, self._writes = list(self._writes.values()), {}
        self._read.clear()
        if not writes:
            return
        keys: list[str] = []
        positions: dict[str, int] = {}

        def position(name: str) -> int:
            if name not in positions:
                keys.append(name)
                positions[name] = len(keys)
            return positions[name]

        ops = [
            {
                "k": position(self.connection.record_key(w.namespace, w.key)),
                "i": position(self.connection.index_key(w.namespace)),
                "m": w.key, "e": w.expected, "t": "d" if w.data is None else "s",
                "v": w.version, "d": w.data or "", "o": w.owner, "x": w.ttl_ms,
            }
            for w in writes
        ]
        failed = await self._call(self.connection.commit_script(keys=keys, args=[json.dumps(ops)]))
        if failed and int(failed) < 0:
            raise _corrupt(keys[-int(failed) - 1], "it holds another type of Redis value")
        if failed:
            w = writes[int(failed) - 1]
            raise ConcurrencyError(f"{w.namespace} {w.key!r} changed meanwhile in Redis")

    async def rollback(self) -> None:
        self._writes.clear()
        self._read.clear()

    # --- helpers ------------------------------------------------------------------------

    async def _call(self, pending: Any, redis_key: str | None = None) -> Any:
        """Await a Redis call through the connection (outages are ``StoreUnavailable``),
        turning foreign data (a key of another type, ``redis_key`` when known) into
        ``CorruptData``."""
        try:
            return await self.connection.call(pending)
        except ResponseError as exc:
            if "WRONGTYPE" in str(exc):
                if redis_key is not None:
                    raise _corrupt(redis_key, "it holds another type of Redis value, not a hash") from None
                raise CorruptData(
                    "a Redis key of this entity holds data of another type "
                    f"(keys under {self.connection.prefix}: belong to StarModel): {exc}"
                ) from None
            raise StoreUnavailable(f"Redis refused a command: {exc}") from None

    def _decode(self, entity_cls: type[E], key: str, fields: dict[str, str]) -> E | None:
        if not fields:
            return None
        redis_key = self.connection.record_key(entity_cls.namespace(), key)
        version = _int_or_none(fields.get("v"))
        if version is None or "d" not in fields:
            raise _corrupt(redis_key, "it is not a StarModel record (fields v and d expected)")
        return self._entity(entity_cls, key, version, fields["d"], fields.get("o") or "")

    def _entity(self, entity_cls: type[E], key: str, version: int, data: str, owner: str) -> E:
        try:
            entity = entity_cls.model_validate_json(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:3]
            )
            raise _corrupt(
                self.connection.record_key(entity_cls.namespace(), key),
                f"it is not a valid {entity_cls.__name__} ({problems})",
            ) from None
        identity = entity.__pydantic_private__
        assert identity is not None
        identity["_sm_key"] = key
        identity["_sm_version"] = version
        identity["_sm_owner"] = owner or None
        return entity


def _stored_json(entity: Entity) -> str:
    """The entity's fields as JSON (computed values are derived again when it is read)."""
    computed = set(type(entity).model_computed_fields)
    return entity.model_dump_json(exclude=computed or None)


def _int_or_none(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _corrupt(redis_key: str, why: str) -> CorruptData:
    return CorruptData(
        f"stored data under Redis key {redis_key!r} cannot be used: {why}; fix or delete the key"
    )
