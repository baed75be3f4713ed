"""The repository contract (``starmodel.testing.RepositoryContract``) against every built-in
store: memory, SQLite (a file) and PostgreSQL (the real server).

One suite; the stores differ only in what they declare: memory has TTL but no
transactions, SQL has transactions but no TTL. The SQL class runs once per database
(``database_url`` is parametrized in conftest.py).
"""

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import JSON
from sqlmodel import Field

from starmodel import Entity
from starmodel.adapters.driven.stores.memory import MemoryRepository, MemoryStore
from starmodel.adapters.driven.stores.redis import RedisConnection, RedisRepository
from starmodel.adapters.driven.stores.sql import SqlDatabase, SqlRepository
from starmodel.core.ports import EntityRepository
from starmodel.core.store import StateStore
from starmodel.testing import RepositoryContract

# --- the entities: the fields the contract uses, once per kind of store ----------------------


class MemNote(Entity):
    model_config = {"scope": "id", "namespace": "contract_mem_note"}
    title: str
    count: int = 0
    tags: list[str] = []


class MemShortNote(Entity):
    model_config = {"scope": "id", "namespace": "contract_mem_short", "ttl": 10}
    title: str
    count: int = 0
    tags: list[str] = []


class MemPrivateNote(Entity):
    model_config = {"scope": "id", "namespace": "contract_mem_private", "private": True}
    title: str
    count: int = 0
    tags: list[str] = []


class RedisNote(Entity):
    model_config = {"scope": "id", "store": StateStore.SERVER_REDIS, "namespace": "contract_redis_note"}
    title: str
    count: int = 0
    tags: list[str] = []


class RedisShortNote(Entity):
    model_config = {
        "scope": "id", "store": StateStore.SERVER_REDIS, "namespace": "contract_redis_short", "ttl": 1,
    }
    title: str
    count: int = 0
    tags: list[str] = []


class RedisPrivateNote(Entity):
    model_config = {
        "scope": "id", "store": StateStore.SERVER_REDIS, "namespace": "contract_redis_private",
        "private": True,
    }
    title: str
    count: int = 0
    tags: list[str] = []


class SqlNote(Entity, table=True):
    model_config = {"namespace": "contract_sql_note"}
    id: int | None = Field(default=None, primary_key=True)
    title: str
    count: int = 0
    tags: list[str] = Field(default_factory=list, sa_type=JSON)


class SqlPrivateNote(Entity, table=True):
    model_config = {"namespace": "contract_sql_private", "private": True}
    id: int | None = Field(default=None, primary_key=True)
    title: str
    count: int = 0
    tags: list[str] = Field(default_factory=list, sa_type=JSON)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        self.now += seconds


# --- the suite, per store ---------------------------------------------------------------------


class TestMemoryRepositoryContract(RepositoryContract):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def repository_factory(self, clock: FakeClock) -> Callable[[], EntityRepository]:
        store = MemoryStore(clock)
        return lambda: MemoryRepository(store)

    @pytest.fixture
    def advance_clock(self, clock: FakeClock):
        return clock.advance

    @pytest.fixture
    def entity_cls(self) -> type[Entity]:
        return MemNote

    @pytest.fixture
    def ttl_entity_cls(self) -> type[Entity]:
        return MemShortNote

    @pytest.fixture
    def private_entity_cls(self) -> type[Entity]:
        return MemPrivateNote


class TestSqlRepositoryContract(RepositoryContract):
    supports_ttl = False  # rows live until deleted

    @pytest.fixture
    async def database(self, database_url: str) -> AsyncIterator[SqlDatabase]:
        database = SqlDatabase(database_url)
        await database.create_tables([SqlNote, SqlPrivateNote])
        try:
            yield database
        finally:
            await database.dispose()

    @pytest.fixture
    def repository_factory(self, database: SqlDatabase) -> Callable[[], EntityRepository]:
        return lambda: SqlRepository(database)

    @pytest.fixture
    def entity_cls(self) -> type[Entity]:
        return SqlNote

    @pytest.fixture
    def private_entity_cls(self) -> type[Entity]:
        return SqlPrivateNote


class TestRedisRepositoryContract(RepositoryContract):
    """The real Redis at 127.0.0.1:6379, under a key prefix of each test's own; TTLs are
    Redis's own (the clock is the real one)."""

    @pytest.fixture
    async def connection(self, redis_url: str, redis_prefix: str) -> AsyncIterator[RedisConnection]:
        connection = RedisConnection(redis_url, prefix=redis_prefix)
        try:
            yield connection
        finally:
            await connection.close()

    @pytest.fixture
    def repository_factory(self, connection: RedisConnection) -> Callable[[], EntityRepository]:
        return lambda: RedisRepository(connection)

    @pytest.fixture
    def entity_cls(self) -> type[Entity]:
        return RedisNote

    @pytest.fixture
    def ttl_entity_cls(self) -> type[Entity]:
        return RedisShortNote

    @pytest.fixture
    def private_entity_cls(self) -> type[Entity]:
        return RedisPrivateNote


def test_capabilities_declared_false_are_not_collected():
    assert TestSqlRepositoryContract.test_ttl_is_refreshed_on_every_save is None
    assert TestSqlRepositoryContract.test_of_two_units_preparing_one_record_one_wins is not None
    assert callable(TestMemoryRepositoryContract.test_rollback_after_prepare_releases_what_it_held)
    assert callable(TestMemoryRepositoryContract.test_ttl_is_refreshed_on_every_save)
    assert callable(TestSqlRepositoryContract.test_rollback_forgets_inserts_updates_and_deletes)


def test_importing_starmodel_does_not_import_pytest():
    import subprocess
    import sys

    code = "import sys, starmodel; print('pytest' in sys.modules, 'starmodel.testing' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
