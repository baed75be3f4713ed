"""The journal in Redis: shared by every server process (the journal of Redis entities, and of
memory and browser-kept ones when the app has ``REDIS_URL``).

Keys (``<p>`` is the app's Redis prefix, ``<ns>`` an entity's namespace):

- ``<p>:_j:<ns>:e``: a hash of entries (id -> JSON);
- ``<p>:_j:<ns>:r:<key>``: a record's entry ids, scored by version (commit order, even when
  two processes append in the other order);
- ``<p>:_j:<ns>:t``: the entity's entry ids, scored by time (milliseconds);
- ``<p>:_j:seq``: the last id given.

One Lua script appends a unit of work's entries and prunes their records, atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starmodel.adapters.driven.stores.redis import RedisConnection
from starmodel.core.journal import Journal, JournalEntry, JournalSettings

__all__ = ["RedisJournal"]

# KEYS[1]: the id counter. ARGV[1]: the key base (<p>:_j:), ARGV[2]: JSON list of
# {ns, key, v (version), t (ms), e (entry JSON without id), keep (0: all), cut (ms; 0: none)}.
_APPEND = """
local base = ARGV[1]
for _, item in ipairs(cjson.decode(ARGV[2])) do
  local id = tostring(redis.call('INCR', KEYS[1]))
  local entries = base .. item.ns .. ':e'
  local record, times = base .. item.ns .. ':r:' .. item.key, base .. item.ns .. ':t'
  redis.call('HSET', entries, id, '{"id":"' .. id .. '",' .. string.sub(item.e, 2))
  redis.call('ZADD', record, item.v, id)
  redis.call('ZADD', times, item.t, id)
  local gone = {}
  if item.keep > 0 then
    gone = redis.call('ZRANGE', record, 0, -(item.keep + 1))
  end
  if item.cut > 0 then
    for _, old in ipairs(redis.call('ZRANGEBYSCORE', times, '-inf', '(' .. item.cut)) do
      local raw = redis.call('HGET', entries, old)
      if raw and cjson.decode(raw).key == item.key then table.insert(gone, old) end
    end
  end
  for _, old in ipairs(gone) do
    redis.call('ZREM', record, old)
    redis.call('ZREM', times, old)
    redis.call('HDEL', entries, old)
  end
end
return 0
"""


class RedisJournal(Journal):
    """Journal entries in Redis, through the app's ``RedisConnection`` (its timeouts and
    breaker)."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self.base = f"{connection.prefix}:_j:"
        self._script: Any = None

    def _append_script(self) -> Any:
        if self._script is None:
            self._script = self.connection.client.register_script(_APPEND)
        return self._script

    async def append(self, entries: Sequence[JournalEntry], settings: dict[str, JournalSettings]) -> None:
        items = []
        for entry in entries:
            data = entry.to_dict()
            del data["id"]
            kept = settings.get(entry.entity)
            cut = 0
            if kept is not None and kept.max_age is not None:
                cut = int((entry.at.timestamp() - kept.max_age) * 1000)
            items.append({
                "ns": entry.entity,
                "key": entry.key,
                "v": entry.version,
                "t": int(entry.at.timestamp() * 1000),
                "e": json.dumps(data, separators=(",", ":")),
                "keep": (kept.keep or 0) if kept is not None else 0,
                "cut": cut,
            })
        script = self._append_script()
        await self.connection.call(script(keys=[self.base + "seq"], args=[self.base, json.dumps(items)]))

    async def history(
        self, entity: str, key: str | None = None, *, limit: int = 50, newer_than: int | None = None
    ) -> list[JournalEntry]:
        client = self.connection.client
        if key is not None:
            low = f"({newer_than}" if newer_than is not None else "-inf"
            ids = await self.connection.call(
                client.zrevrangebyscore(f"{self.base}{entity}:r:{key}", "+inf", low, start=0, num=limit)
            )
        else:
            ids = await self.connection.call(client.zrevrange(f"{self.base}{entity}:t", 0, limit - 1))
        if not ids:
            return []
        raw = await self.connection.call(client.hmget(f"{self.base}{entity}:e", list(ids)))  # type: ignore[arg-type]
        return [JournalEntry.from_dict(json.loads(item)) for item in raw if item]

    async def find(self, entity: str, entry_id: str) -> JournalEntry | None:
        raw = await self.connection.call(self.connection.client.hget(f"{self.base}{entity}:e", entry_id))
        return JournalEntry.from_dict(json.loads(raw)) if raw else None
