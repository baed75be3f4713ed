"""The repository contract suite: the checks every ``EntityRepository`` passes, built-in or plugin.

Subclass ``RepositoryContract`` in a test module (name the subclass ``Test...`` so pytest
collects it) and provide two fixtures; every inherited ``test_*`` method then runs against
your store:

    import pytest
    from starmodel import Entity
    from starmodel.adapters.driven.stores.memory import MemoryRepository, MemoryStore
    from starmodel.testing import RepositoryContract


    class Note(Entity):                      # a record: keyed, as the contract needs
        model_config = {"scope": "id", "namespace": "contract_note"}
        title: str
        count: int = 0
        tags: list[str] = []


    class TestMyStore(RepositoryContract):
        supports_ttl = False                 # the capabilities your store declares

        @pytest.fixture
        def entity_cls(self):
            return Note

        @pytest.fixture
        def repository_factory(self):
            store = MemoryStore()            # what every unit of work shares...
            return lambda: MemoryRepository(store)  # ...and one repository per unit of work

Fixtures the subclass provides:

- ``repository_factory``: a callable returning the repository for one unit of work (a new
  one per call for stores with transactions, such as SQL; a shared one is fine otherwise).
  It may be ``async``. Every test starts from an empty store: make the fixture function
  scoped and clean up after it.
- ``entity_cls``: a keyed entity class (``scope="id"``; for SQL ``table=True`` with a
  primary key) with the fields ``title: str``, ``count: int = 0`` and ``tags: list[str] = []``
  (in SQL, ``tags: list[str] = Field(default_factory=list, sa_type=JSON)``).
- ``private_entity_cls``: the same fields, a private record class (``"private": True`` in
  its ``model_config``): the store keeps each record's ``_sm_owner`` and
  ``list(..., owner=...)`` returns only that owner's records.
- with ``supports_ttl``: ``ttl_entity_cls`` (the same fields, plus ``"ttl": <seconds>`` in
  its ``model_config``) and, unless the store runs on the real clock, ``advance_clock``: an
  ``async`` callable moving the store's clock forward by some seconds (the default sleeps).

Capabilities are class attributes. A capability declared ``False`` removes its checks from
the class (they are not collected, so they show neither as passed nor as skipped):

- ``supports_transactions`` (default ``True``): ``begin``/``commit``/``rollback`` make the
  writes of a unit of work durable together, and writes rolled back are seen by nobody.
  Stores without transactions must still accept the calls.
- ``supports_ttl`` (default ``True``): entries of an entity with a ``ttl`` expire that many
  seconds after their last save (every save refreshes it). SQL stores declare ``False``.

The two-phase commit of ``EntityRepository`` is checked too: ``prepare`` refuses a stale
write and then holds nothing; of two units of work preparing one record, one wins; a commit
after a successful ``prepare`` applies (only a store that declares ``decides_at_commit`` may
still refuse there); a rollback after ``prepare`` releases what it held.

The suite keeps two repositories open at once only in the test of two units preparing one
record, and runs the second one in a task of its own (SQLite serializes writers and a SQL
row being written is locked, so the second may wait for the first to end); it closes each
unit of work with ``commit`` or ``rollback`` as the unit of work does.

Keys: ``key(n)`` (n from 1 to 9) gives keys a store accepts that sort like ``n``; override it
for stores whose keys are not small integers or plain text (e.g. UUID primary keys).

The tests are ``async`` and marked ``asyncio`` (pytest-asyncio is needed).
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import pytest

from starmodel.core.errors import ConcurrencyError
from starmodel.testing._contract_base import Clock, Record, RepositoryFactory, RollBack
from starmodel.testing._contract_commit import TwoPhaseCommitChecks

__all__ = ["RepositoryContract", "RepositoryFactory"]

_TRANSACTION_TESTS = (
    "test_rollback_forgets_inserts_updates_and_deletes",
    "test_a_failed_unit_of_work_leaves_earlier_writes_of_it_unsaved",
    "test_rollback_after_prepare_releases_what_it_held",
)
_TTL_TESTS = (
    "test_ttl_expires_entries_after_their_last_save",
    "test_ttl_is_refreshed_on_every_save",
)


class RepositoryContract(TwoPhaseCommitChecks):
    """Base class of the contract tests of ``starmodel.core.ports.EntityRepository``.

    See the module docstring for the fixtures a subclass provides and the capabilities it
    declares.
    """

    supports_transactions: ClassVar[bool] = True
    supports_ttl: ClassVar[bool] = True
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dropped = (() if cls.supports_transactions else _TRANSACTION_TESTS) + (
            () if cls.supports_ttl else _TTL_TESTS
        )
        for name in dropped:
            setattr(cls, name, None)  # a declared capability: not collected at all

    # --- get --------------------------------------------------------------------------------

    async def test_get_of_an_unknown_key_is_none(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        async with self.unit(repository_factory) as repository:
            assert await repository.get(entity_cls, self.key(9)) is None
            assert await repository.get(entity_cls, "no-such-key") is None

    async def test_get_returns_a_copy_with_key_and_version(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        saved = await self.insert(repository_factory, entity_cls(title="milk", count=2, tags=["a"]))
        key = saved._sm_key
        assert key
        async with self.unit(repository_factory) as repository:
            first = await repository.get(entity_cls, key)
            second = await repository.get(entity_cls, key)
        assert first is not None and second is not None
        assert first is not second and first is not saved
        assert type(first) is entity_cls
        assert (first._sm_key, first._sm_version) == (key, 1)
        assert self.values(first) == {"title": "milk", "count": 2, "tags": ["a"]}

    async def test_changing_a_loaded_copy_changes_nothing_stored(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        key = (await self.insert(repository_factory, entity_cls(title="milk", tags=["a"])))._sm_key
        assert key
        async with self.unit(repository_factory) as repository:
            loaded = await repository.get(entity_cls, key)
            assert loaded is not None
            loaded.title = "changed"
            loaded.count = 7
            loaded.tags.append("b")
            again = await repository.get(entity_cls, key)
            assert again is not None
            assert self.values(again) == {"title": "milk", "count": 0, "tags": ["a"]}
        stored = await self.stored(repository_factory, entity_cls, key)
        assert self.values(stored) == {"title": "milk", "count": 0, "tags": ["a"]}
        assert stored._sm_version == 1

    async def test_changing_a_saved_entity_afterwards_changes_nothing_stored(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        saved = await self.insert(repository_factory, entity_cls(title="milk", tags=["a"]))
        saved.tags.append("b")
        saved.count = 5
        stored = await self.stored(repository_factory, entity_cls, saved._sm_key or "")
        assert self.values(stored) == {"title": "milk", "count": 0, "tags": ["a"]}

    # --- save -------------------------------------------------------------------------------

    async def test_insert_without_a_key_assigns_one_and_version_1(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        first, second = entity_cls(title="one"), entity_cls(title="two")
        assert first._sm_version == 0
        async with self.unit(repository_factory) as repository:
            await repository.save(first)
            await repository.save(second)
        assert first._sm_key and second._sm_key and first._sm_key != second._sm_key
        assert (first._sm_version, second._sm_version) == (1, 1)
        stored = await self.stored(repository_factory, entity_cls, first._sm_key)
        assert (stored._sm_key, stored._sm_version) == (first._sm_key, 1)
        assert self.values(stored)["title"] == "one"

    async def test_insert_under_a_chosen_key(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        entity = await self.insert(repository_factory, self.with_key(entity_cls(title="three"), self.key(3)))
        assert (entity._sm_key, entity._sm_version) == (self.key(3), 1)
        stored = await self.stored(repository_factory, entity_cls, self.key(3))
        assert self.values(stored)["title"] == "three"

    async def test_update_bumps_the_version_each_time(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        key = (await self.insert(repository_factory, entity_cls(title="milk")))._sm_key or ""
        for expected_version in (2, 3):
            async with self.unit(repository_factory) as repository:
                loaded = await repository.get(entity_cls, key)
                assert loaded is not None
                loaded.count += 1
                loaded.tags.append(str(loaded.count))
                await repository.save(loaded)
                assert (loaded._sm_key, loaded._sm_version) == (key, expected_version)
        stored = await self.stored(repository_factory, entity_cls, key)
        assert stored._sm_version == 3
        assert self.values(stored) == {"title": "milk", "count": 2, "tags": ["1", "2"]}

    async def test_saving_a_stale_copy_raises_and_writes_nothing(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        key = (await self.insert(repository_factory, entity_cls(title="milk")))._sm_key or ""
        stale = await self.stored(repository_factory, entity_cls, key)
        async with self.unit(repository_factory) as repository:  # someone else writes first
            winner = await repository.get(entity_cls, key)
            assert winner is not None
            winner.count = 1
            await repository.save(winner)
        stale.title = "lost"
        stale.count = 99
        with pytest.raises(ConcurrencyError):
            async with self.unit(repository_factory) as repository:
                await repository.save(stale)
        assert stale._sm_version == 1  # unchanged: the caller may reload and retry
        stored = await self.stored(repository_factory, entity_cls, key)
        assert stored._sm_version == 2
        assert self.values(stored) == {"title": "milk", "count": 1, "tags": []}

    async def test_saving_a_version_ahead_of_the_store_raises(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        key = (await self.insert(repository_factory, entity_cls(title="milk")))._sm_key or ""
        ahead = await self.stored(repository_factory, entity_cls, key)
        ahead._sm_version = 5
        ahead.count = 5
        with pytest.raises(ConcurrencyError):
            async with self.unit(repository_factory) as repository:
                await repository.save(ahead)
        stored = await self.stored(repository_factory, entity_cls, key)
        assert (stored._sm_version, self.values(stored)["count"]) == (1, 0)

    async def test_inserting_an_existing_key_raises_and_writes_nothing(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        await self.insert(repository_factory, self.with_key(entity_cls(title="first"), self.key(1)))
        duplicate = self.with_key(entity_cls(title="second"), self.key(1))
        with pytest.raises(ConcurrencyError):  # version 0 means "must not exist yet"
            async with self.unit(repository_factory) as repository:
                await repository.save(duplicate)
        stored = await self.stored(repository_factory, entity_cls, self.key(1))
        assert (stored._sm_version, self.values(stored)["title"]) == (1, "first")

    async def test_saving_a_deleted_record_raises_and_recreates_nothing(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        key = (await self.insert(repository_factory, entity_cls(title="milk")))._sm_key or ""
        loaded = await self.stored(repository_factory, entity_cls, key)
        async with self.unit(repository_factory) as repository:
            assert await repository.delete(entity_cls, key) is True
        loaded.count = 1
        with pytest.raises(ConcurrencyError):
            async with self.unit(repository_factory) as repository:
                await repository.save(loaded)
        assert await self.fetch(repository_factory, entity_cls, key) is None

    # --- delete -----------------------------------------------------------------------------

    async def test_delete_removes_and_says_whether_there_was_something(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        kept = await self.insert(repository_factory, entity_cls(title="kept"))
        gone = await self.insert(repository_factory, entity_cls(title="gone"))
        async with self.unit(repository_factory) as repository:
            assert await repository.delete(entity_cls, gone._sm_key or "") is True
            assert await repository.get(entity_cls, gone._sm_key or "") is None
        async with self.unit(repository_factory) as repository:
            assert await repository.delete(entity_cls, gone._sm_key or "") is False
            assert await repository.delete(entity_cls, self.key(9)) is False
            assert await repository.delete(entity_cls, "no-such-key") is False
        assert await self.fetch(repository_factory, entity_cls, gone._sm_key or "") is None
        assert await self.listed_keys(repository_factory, entity_cls) == [kept._sm_key]

    async def test_a_deleted_key_can_be_inserted_again(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        await self.insert(repository_factory, self.with_key(entity_cls(title="old"), self.key(2)))
        async with self.unit(repository_factory) as repository:
            assert await repository.delete(entity_cls, self.key(2)) is True
        again = await self.insert(repository_factory, self.with_key(entity_cls(title="new"), self.key(2)))
        assert again._sm_version == 1
        stored = await self.stored(repository_factory, entity_cls, self.key(2))
        assert (stored._sm_version, self.values(stored)["title"]) == (1, "new")

    # --- list -------------------------------------------------------------------------------

    async def test_list_is_in_key_order_with_versions(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        async with self.unit(repository_factory) as repository:
            for n in (3, 1, 5, 2, 4):
                await repository.save(self.with_key(entity_cls(title=f"t{n}", count=n), self.key(n)))
        async with self.unit(repository_factory) as repository:
            found = await repository.list(entity_cls)
        assert [item._sm_key for item in found] == [self.key(n) for n in range(1, 6)]
        assert [self.values(item)["count"] for item in found] == [1, 2, 3, 4, 5]
        assert all(type(item) is entity_cls and item._sm_version == 1 for item in found)

    async def test_list_pages_with_offset_and_limit(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        async with self.unit(repository_factory) as repository:
            for n in range(1, 6):
                await repository.save(self.with_key(entity_cls(title=f"t{n}"), self.key(n)))
        keys = [self.key(n) for n in range(1, 6)]
        assert await self.listed_keys(repository_factory, entity_cls, offset=1, limit=2) == keys[1:3]
        assert await self.listed_keys(repository_factory, entity_cls, offset=3) == keys[3:]
        assert await self.listed_keys(repository_factory, entity_cls, limit=1) == keys[:1]
        assert await self.listed_keys(repository_factory, entity_cls, offset=5) == []
        assert await self.listed_keys(repository_factory, entity_cls, offset=4, limit=10) == keys[4:]

    async def test_list_with_limit_zero_is_empty(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        await self.insert(repository_factory, entity_cls(title="milk"))
        assert await self.listed_keys(repository_factory, entity_cls, limit=0) == []

    async def test_list_of_an_empty_store_is_empty(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        assert await self.listed_keys(repository_factory, entity_cls) == []

    async def test_listed_entities_are_detached_copies(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        key = (await self.insert(repository_factory, entity_cls(title="milk", tags=["a"])))._sm_key or ""
        async with self.unit(repository_factory) as repository:
            (listed,) = await repository.list(entity_cls)
            listed.tags.append("b")
            listed.count = 3
        stored = await self.stored(repository_factory, entity_cls, key)
        assert self.values(stored) == {"title": "milk", "count": 0, "tags": ["a"]}

    # --- private records (owner) ---------------------------------------------------------

    async def test_the_owner_of_a_private_record_is_stored(
        self, repository_factory: RepositoryFactory, private_entity_cls: Record
    ) -> None:
        entity = private_entity_cls(title="mine")
        entity._sm_owner = "alice"
        key = (await self.insert(repository_factory, entity))._sm_key or ""
        async with self.unit(repository_factory) as repository:
            loaded = await repository.get(private_entity_cls, key)
            assert loaded is not None and loaded._sm_owner == "alice"
            loaded.count = 1
            await repository.save(loaded)  # an update keeps the owner
        stored = await self.stored(repository_factory, private_entity_cls, key)
        assert (stored._sm_owner, stored._sm_version) == ("alice", 2)

    async def test_list_by_owner_returns_only_that_owners_records(
        self, repository_factory: RepositoryFactory, private_entity_cls: Record
    ) -> None:
        owners = {1: "alice", 2: "bob", 3: "alice", 4: "alice", 5: "bob"}
        async with self.unit(repository_factory) as repository:
            for n in (4, 2, 1, 5, 3):
                entity = self.with_key(private_entity_cls(title=f"t{n}"), self.key(n))
                entity._sm_owner = owners[n]
                await repository.save(entity)
        alices = [self.key(n) for n in (1, 3, 4)]
        assert await self.listed_keys(repository_factory, private_entity_cls, owner="alice") == alices
        assert await self.listed_keys(repository_factory, private_entity_cls, owner="bob") == [
            self.key(2), self.key(5)
        ]
        assert await self.listed_keys(repository_factory, private_entity_cls, owner="carol") == []
        paged = await self.listed_keys(
            repository_factory, private_entity_cls, owner="alice", offset=1, limit=1
        )
        assert paged == alices[1:2]  # the page is taken from the owner's records
        everyone = await self.listed_keys(repository_factory, private_entity_cls)
        assert everyone == [self.key(n) for n in range(1, 6)]
        async with self.unit(repository_factory) as repository:
            listed = await repository.list(private_entity_cls, owner="bob")
        assert [item._sm_owner for item in listed] == ["bob", "bob"]

    # --- transactions -----------------------------------------------------------------------

    async def test_writes_are_visible_within_their_unit_of_work_and_after_commit(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        async with self.unit(repository_factory) as repository:
            entity = self.with_key(entity_cls(title="milk"), self.key(1))
            await repository.save(entity)
            seen = await repository.get(entity_cls, self.key(1))
            assert seen is not None and seen._sm_version == 1
            seen.count = 1
            await repository.save(seen)
            assert [item._sm_key for item in await repository.list(entity_cls)] == [self.key(1)]
        stored = await self.stored(repository_factory, entity_cls, self.key(1))
        assert (stored._sm_version, self.values(stored)["count"]) == (2, 1)

    async def test_hooks_are_accepted_outside_a_unit_of_work(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        made = repository_factory()
        repository = await made if inspect.isawaitable(made) else made
        await repository.rollback()  # nothing begun: nothing to do
        await repository.commit()
        await repository.begin()
        await repository.commit()  # an empty unit of work
        await repository.begin()
        await repository.prepare()  # an empty unit of work, in two phases
        await repository.commit()

    async def test_rollback_forgets_inserts_updates_and_deletes(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        await self.insert(repository_factory, self.with_key(entity_cls(title="kept"), self.key(1)))
        await self.insert(repository_factory, self.with_key(entity_cls(title="other"), self.key(2)))
        with pytest.raises(RollBack):
            async with self.unit(repository_factory) as repository:
                await repository.save(self.with_key(entity_cls(title="new"), self.key(3)))
                loaded = await repository.get(entity_cls, self.key(1))
                assert loaded is not None
                loaded.count = 10
                await repository.save(loaded)
                assert await repository.delete(entity_cls, self.key(2)) is True
                raise RollBack

        assert await self.fetch(repository_factory, entity_cls, self.key(3)) is None
        kept = await self.stored(repository_factory, entity_cls, self.key(1))
        assert (kept._sm_version, self.values(kept)["count"]) == (1, 0)
        assert (await self.stored(repository_factory, entity_cls, self.key(2)))._sm_version == 1
        assert await self.listed_keys(repository_factory, entity_cls) == [self.key(1), self.key(2)]

    async def test_a_failed_unit_of_work_leaves_earlier_writes_of_it_unsaved(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        await self.insert(repository_factory, self.with_key(entity_cls(title="a"), self.key(1)))
        stale = await self.stored(repository_factory, entity_cls, self.key(1))
        await self.insert(repository_factory, self.with_key(entity_cls(title="b"), self.key(2)))
        async with self.unit(repository_factory) as repository:  # makes ``stale`` stale
            current = await repository.get(entity_cls, self.key(1))
            assert current is not None
            current.count = 1
            await repository.save(current)
        with pytest.raises(ConcurrencyError):
            async with self.unit(repository_factory) as repository:
                other = await repository.get(entity_cls, self.key(2))
                assert other is not None
                other.count = 5
                await repository.save(other)  # written first...
                await repository.save(self.with_key(entity_cls(title="c"), self.key(3)))
                await repository.save(stale)  # ...then the unit of work fails
        other_stored = await self.stored(repository_factory, entity_cls, self.key(2))
        assert (other_stored._sm_version, self.values(other_stored)["count"]) == (1, 0)
        assert await self.fetch(repository_factory, entity_cls, self.key(3)) is None

    # --- ttl --------------------------------------------------------------------------------

    async def test_ttl_expires_entries_after_their_last_save(
        self, repository_factory: RepositoryFactory, ttl_entity_cls: Record, advance_clock: Clock
    ) -> None:
        ttl = ttl_entity_cls.options().ttl
        assert ttl, f"{ttl_entity_cls.__name__} declares no ttl"
        key = (await self.insert(repository_factory, ttl_entity_cls(title="short-lived")))._sm_key or ""
        await advance_clock(ttl * 0.5)
        assert await self.fetch(repository_factory, ttl_entity_cls, key) is not None
        await advance_clock(ttl * 0.7)
        assert await self.fetch(repository_factory, ttl_entity_cls, key) is None
        assert await self.listed_keys(repository_factory, ttl_entity_cls) == []

    async def test_ttl_is_refreshed_on_every_save(
        self, repository_factory: RepositoryFactory, ttl_entity_cls: Record, advance_clock: Clock
    ) -> None:
        ttl = ttl_entity_cls.options().ttl
        assert ttl, f"{ttl_entity_cls.__name__} declares no ttl"
        key = (await self.insert(repository_factory, ttl_entity_cls(title="kept alive")))._sm_key or ""
        await advance_clock(ttl * 0.6)
        async with self.unit(repository_factory) as repository:
            loaded = await repository.get(ttl_entity_cls, key)
            assert loaded is not None
            loaded.count = 1
            await repository.save(loaded)
        await advance_clock(ttl * 0.6)  # 1.2 ttl after the insert, 0.6 after the update
        refreshed = await self.fetch(repository_factory, ttl_entity_cls, key)
        assert refreshed is not None, "saving did not refresh the ttl"
        assert (refreshed._sm_version, self.values(refreshed)["count"]) == (2, 1)
        await advance_clock(ttl * 0.6)  # 1.2 ttl after the last save
        assert await self.fetch(repository_factory, ttl_entity_cls, key) is None
