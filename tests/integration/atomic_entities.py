"""Entities of the atomic-event tests: one event changes a counter in one store and a counter
in another, then (by its ``mode``) succeeds, raises, breaks a unique constraint or adds a row
that the database refuses when the transaction commits.

Counters the events run on (``bump``), one per store: ``SqlCounter`` (records 1, 2...),
``RedisCounter`` and ``JsonCounter`` (records ``k1``, ``k2``...; ``open`` makes one),
``ClientCounter`` (kept by the browser, one per tab). Counters they change besides, shared by
every call: ``MemoryShared`` and ``RedisShared`` (global), ``SqlShared`` and ``JsonShared``
(record ``1``, made by the first event that needs it).
"""

from __future__ import annotations

from sqlmodel import Field

from starmodel import Entity, StateStore, event

__all__ = [
    "CLIENT_COUNTERS",
    "COUNTERS",
    "SHARED",
    "ClientCounter",
    "Fuse",
    "JsonCounter",
    "JsonShared",
    "MemoryShared",
    "RedisCounter",
    "RedisShared",
    "SqlCounter",
    "SqlShared",
    "Taken",
]

TAKEN = "taken"  # the name the first ``Taken.claim`` takes; the "unique" mode adds it again
SHARED_KEY = "1"


class Taken(Entity, table=True):
    """A SQL record with a unique name: adding a second one with the same name is refused."""

    model_config = {"table_name": "atom_taken"}
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)

    @event
    def claim(cls, name: str) -> None:
        cls.records.add(Taken(name=name))


class Fuse(Entity, table=True):
    """A SQL row whose ``parent`` must exist in ``atom_fuse_parent`` by the time its
    transaction commits (a deferred foreign key the tests add; no parent ever exists)."""

    model_config = {"table_name": "atom_fuse"}
    id: int | None = Field(default=None, primary_key=True)
    parent: int = 0


# --- the counters changed besides the one an event runs on --------------------------------------


class MemoryShared(Entity):
    model_config = {"namespace": "atom_memory_shared", "scope": "global", "per_process": True}
    n: int = 0


class RedisShared(Entity):
    model_config = {"namespace": "atom_redis_shared", "store": StateStore.SERVER_REDIS, "scope": "global"}
    n: int = 0


class SqlShared(Entity, table=True):
    model_config = {"table_name": "atom_sql_shared"}
    id: int | None = Field(default=None, primary_key=True)
    n: int = 0


class JsonShared(Entity):
    model_config = {"namespace": "atom_json_shared", "store": StateStore.CUSTOM, "backend": "jsonfile",
                    "scope": "id"}
    n: int = 0


SHARED: dict[str, type[Entity]] = {
    cls.namespace(): cls for cls in (MemoryShared, RedisShared, SqlShared, JsonShared)
}


def shared_key(cls: type[Entity]) -> str:
    return "global" if cls.options().scope == "global" else SHARED_KEY


async def change_both(counter: Entity, partner: str, mode: str) -> None:
    """What every ``bump`` does: +1 on the counter it runs on and on the shared counter of
    ``partner`` (created if missing), then refuse or not as ``mode`` says."""
    counter.n += 1  # type: ignore[attr-defined]
    cls = SHARED[partner]
    key = shared_key(cls)
    shared = await cls.records.find(key)
    if shared is None:  # two first callers at once: one insert wins, the other event re-runs
        shared = cls(id=int(key)) if cls is SqlShared else cls()
        shared._sm_key = key
        cls.records.add(shared)
    shared.n += 1  # type: ignore[attr-defined]
    if mode == "value_error":
        raise ValueError("refused after both changes")
    if mode == "unique":
        Taken.records.add(Taken(name=TAKEN))
    elif mode == "fail_commit":
        Fuse.records.add(Fuse(parent=404))
    elif mode != "ok":
        raise ValueError(f"unknown mode {mode!r}")


# --- the counters events run on ------------------------------------------------------------------


class SqlCounter(Entity, table=True):
    model_config = {"table_name": "atom_sql_counter"}
    id: int | None = Field(default=None, primary_key=True)
    n: int = 0

    @event
    def open(cls, record: str) -> None:
        cls.records.add(SqlCounter(id=int(record)))

    @event
    async def bump(self, partner: str, mode: str = "ok") -> None:
        await change_both(self, partner, mode)


class RedisCounter(Entity):
    model_config = {"namespace": "atom_redis_counter", "store": StateStore.SERVER_REDIS, "scope": "id"}
    n: int = 0

    @event
    def open(cls, record: str) -> None:
        counter = cls()
        counter._sm_key = record
        cls.records.add(counter)

    @event
    async def bump(self, partner: str, mode: str = "ok") -> None:
        await change_both(self, partner, mode)


class JsonCounter(Entity):
    model_config = {"namespace": "atom_json_counter", "store": StateStore.CUSTOM, "backend": "jsonfile",
                    "scope": "id"}
    n: int = 0

    @event
    def open(cls, record: str) -> None:
        counter = cls()
        counter._sm_key = record
        cls.records.add(counter)

    @event
    async def bump(self, partner: str, mode: str = "ok") -> None:
        await change_both(self, partner, mode)


class ClientCounter(Entity):
    model_config = {"namespace": "atom_client_counter", "store": StateStore.CLIENT_SESSION}
    n: int = 0

    @event
    async def bump(self, partner: str, mode: str = "ok") -> None:
        await change_both(self, partner, mode)


COUNTERS: dict[str, type[Entity]] = {
    "sql": SqlCounter, "redis": RedisCounter, "json": JsonCounter, "client": ClientCounter,
}
CLIENT_COUNTERS = (ClientCounter,)
