"""The repository contract's checks of the two-phase commit (``prepare``, then ``commit`` or
``rollback``) that lets one event write to several stores all or nothing; part of
``RepositoryContract``."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from starmodel.core.errors import ConcurrencyError
from starmodel.testing._contract_base import ContractBase, Record, RepositoryFactory

__all__ = ["TwoPhaseCommitChecks"]

_WAIT = 10.0  # seconds a unit of work may wait for another before the test fails


class TwoPhaseCommitChecks(ContractBase):
    """``prepare`` refuses what ``commit`` could not do and holds what it will write."""

    supports_transactions: ClassVar[bool]  # declared by RepositoryContract

    async def test_commit_after_prepare_applies(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        key = (await self.insert(repository_factory, entity_cls(title="milk")))._sm_key or ""
        repository = await self.open(repository_factory)
        try:
            loaded = await repository.get(entity_cls, key)
            assert loaded is not None
            loaded.count = 1
            await repository.save(loaded)
            await repository.save(self.with_key(entity_cls(title="new"), self.key(7)))
            await repository.prepare()
        except BaseException:
            await repository.rollback()
            raise
        await repository.commit()
        stored = await self.stored(repository_factory, entity_cls, key)
        assert (stored._sm_version, self.values(stored)["count"]) == (2, 1)
        added = await self.stored(repository_factory, entity_cls, self.key(7))
        assert (added._sm_version, self.values(added)["title"]) == (1, "new")

    async def test_prepare_refuses_a_stale_write_and_keeps_nothing(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        key = (await self.insert(repository_factory, entity_cls(title="milk")))._sm_key or ""
        stale = await self.stored(repository_factory, entity_cls, key)
        async with self.unit(repository_factory) as repository:  # someone else writes first
            winner = await repository.get(entity_cls, key)
            assert winner is not None
            winner.count = 1
            await repository.save(winner)
        repository = await self.open(repository_factory)
        with pytest.raises(ConcurrencyError):
            try:
                await repository.save(self.with_key(entity_cls(title="new"), self.key(7)))
                stale.count = 99
                await repository.save(stale)  # refused here, or else by prepare...
                await repository.prepare()
                if type(repository).decides_at_commit:  # ...or by a commit that decides
                    await repository.commit()
            finally:
                await repository.rollback()
        stored = await self.stored(repository_factory, entity_cls, key)
        assert (stored._sm_version, self.values(stored)["count"]) == (2, 1)
        if self.supports_transactions:  # the unit's other write is gone too
            assert await self.fetch(repository_factory, entity_cls, self.key(7)) is None
        async with asyncio.timeout(_WAIT):  # nothing is held: the record can be written at once
            async with self.unit(repository_factory) as repository:
                loaded = await repository.get(entity_cls, key)
                assert loaded is not None
                loaded.count = 2
                await repository.save(loaded)
        assert (await self.stored(repository_factory, entity_cls, key))._sm_version == 3

    async def test_of_two_units_preparing_one_record_one_wins(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        key = (await self.insert(repository_factory, entity_cls(title="milk")))._sm_key or ""
        late_copy = await self.stored(repository_factory, entity_cls, key)
        first = await self.open(repository_factory)
        try:
            mine = await first.get(entity_cls, key)
            assert mine is not None
            mine.count = 1
            await first.save(mine)
            await first.prepare()
        except BaseException:
            await first.rollback()
            raise

        async def second_unit() -> None:
            second = await self.open(repository_factory)
            try:
                late_copy.count = 2
                await second.save(late_copy)
                await second.prepare()
            except BaseException:
                await second.rollback()
                raise
            await second.commit()

        second = asyncio.create_task(second_unit())
        await asyncio.sleep(0.05)  # the second unit goes as far as it can meanwhile
        try:
            await first.commit()
            first_won = True
        except ConcurrencyError:
            assert type(first).decides_at_commit, "a commit after a successful prepare refused"
            await first.rollback()
            first_won = False
        async with asyncio.timeout(_WAIT):
            (outcome,) = await asyncio.gather(second, return_exceptions=True)
        if outcome is not None and not isinstance(outcome, ConcurrencyError):
            raise outcome
        second_won = outcome is None
        assert first_won != second_won, "both units of work applied" if first_won else "neither applied"
        stored = await self.stored(repository_factory, entity_cls, key)
        assert (stored._sm_version, self.values(stored)["count"]) == (2, 1 if first_won else 2)

    async def test_rollback_after_prepare_releases_what_it_held(
        self, repository_factory: RepositoryFactory, entity_cls: Record
    ) -> None:
        key = (await self.insert(repository_factory, entity_cls(title="milk")))._sm_key or ""
        repository = await self.open(repository_factory)
        try:
            loaded = await repository.get(entity_cls, key)
            assert loaded is not None
            loaded.count = 5
            await repository.save(loaded)
            await repository.save(self.with_key(entity_cls(title="new"), self.key(7)))
            await repository.prepare()
        finally:
            await repository.rollback()
        stored = await self.stored(repository_factory, entity_cls, key)
        assert (stored._sm_version, self.values(stored)["count"]) == (1, 0)
        assert await self.fetch(repository_factory, entity_cls, self.key(7)) is None
        async with asyncio.timeout(_WAIT):  # released: another unit writes both at once
            async with self.unit(repository_factory) as repository:
                loaded = await repository.get(entity_cls, key)
                assert loaded is not None
                loaded.count = 1
                await repository.save(loaded)
                await repository.save(self.with_key(entity_cls(title="again"), self.key(7)))
                await repository.prepare()
        stored = await self.stored(repository_factory, entity_cls, key)
        assert (stored._sm_version, self.values(stored)["count"]) == (2, 1)
        assert (await self.stored(repository_factory, entity_cls, self.key(7)))._sm_version == 1
