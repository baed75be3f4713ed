"""MemoryRepository, the default store: copies, versions, TTL, delete and list."""

import pytest

from starmodel import ConcurrencyError, Entity
from starmodel.adapters.persistence.memory import MemoryRepository


class Note(Entity):
    model_config = {"namespace": "mem_note"}
    text: str = ""
    tags: list[str] = []
    meta: dict[str, list[int]] = {}
    pairs: tuple[list[int], ...] = ()


class Crumb(Entity):
    model_config = {"namespace": "mem_crumb", "ttl": 10}
    n: int = 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def new(cls, key, **values):
    entity = cls(**values)
    entity._sm_key = key
    return entity


async def test_get_of_a_missing_key_is_none():
    assert await MemoryRepository().get(Note, "nobody") is None


async def test_save_then_get_round_trips_with_key_and_version():
    repo = MemoryRepository()
    note = new(Note, "k1", text="hello", tags=["a"])
    await repo.save(note)
    assert note._sm_version == 1
    loaded = await repo.get(Note, "k1")
    assert loaded is not None
    assert loaded.public_state() == note.public_state()
    assert (loaded._sm_key, loaded._sm_version) == ("k1", 1)


async def test_get_returns_detached_copies():
    repo = MemoryRepository()
    await repo.save(new(Note, "k", tags=["a"], meta={"x": [1]}))
    first = await repo.get(Note, "k")
    assert first is not None
    first.tags.append("b")
    first.meta["x"].append(2)
    first.text = "changed"
    again = await repo.get(Note, "k")
    assert again is not None
    assert again.public_state()["tags"] == ["a"]
    assert again.meta == {"x": [1]}
    assert again.text == ""


async def test_save_keeps_a_copy_not_the_callers_object():
    repo = MemoryRepository()
    note = new(Note, "k", tags=["a"])
    await repo.save(note)
    note.tags.append("after-save")
    loaded = await repo.get(Note, "k")
    assert loaded is not None
    assert loaded.tags == ["a"]


async def test_copies_are_detached_even_inside_tuples():
    repo = MemoryRepository()
    await repo.save(new(Note, "k", pairs=([1],)))
    loaded = await repo.get(Note, "k")
    assert loaded is not None
    loaded.pairs[0].append(2)
    again = await repo.get(Note, "k")
    assert again is not None
    assert again.pairs == ([1],)


async def test_stale_version_raises_concurrency_error_and_writes_nothing():
    repo = MemoryRepository()
    await repo.save(new(Note, "k", text="v1"))
    reader_a = await repo.get(Note, "k")
    reader_b = await repo.get(Note, "k")
    assert reader_a is not None and reader_b is not None
    reader_a.text = "from a"
    await repo.save(reader_a)
    reader_b.text = "from b"
    with pytest.raises(ConcurrencyError):
        await repo.save(reader_b)
    stored = await repo.get(Note, "k")
    assert stored is not None
    assert (stored.text, stored._sm_version) == ("from a", 2)


async def test_creating_an_existing_key_raises_concurrency_error():
    repo = MemoryRepository()
    await repo.save(new(Note, "k", text="first"))
    with pytest.raises(ConcurrencyError):
        await repo.save(new(Note, "k", text="second"))
    stored = await repo.get(Note, "k")
    assert stored is not None and stored.text == "first"


async def test_save_without_key_is_refused():
    with pytest.raises(ValueError, match="key"):
        await MemoryRepository().save(Note())


async def test_ttl_expiry_follows_the_injected_clock():
    clock = FakeClock()
    repo = MemoryRepository(clock=clock)
    await repo.save(new(Crumb, "k", n=1))
    clock.now += 9.9
    assert await repo.get(Crumb, "k") is not None
    clock.now += 0.2
    assert await repo.get(Crumb, "k") is None
    assert len(repo) == 0


async def test_saving_refreshes_the_ttl():
    clock = FakeClock()
    repo = MemoryRepository(clock=clock)
    await repo.save(new(Crumb, "k", n=1))
    clock.now += 8
    crumb = await repo.get(Crumb, "k")
    assert crumb is not None
    crumb.n = 2
    await repo.save(crumb)
    clock.now += 8
    alive = await repo.get(Crumb, "k")
    assert alive is not None and alive.n == 2


async def test_an_expired_key_can_be_created_again():
    clock = FakeClock()
    repo = MemoryRepository(clock=clock)
    await repo.save(new(Crumb, "k", n=1))
    clock.now += 11
    await repo.save(new(Crumb, "k", n=5))
    again = await repo.get(Crumb, "k")
    assert again is not None and (again.n, again._sm_version) == (5, 1)


async def test_entities_without_ttl_never_expire():
    clock = FakeClock()
    repo = MemoryRepository(clock=clock)
    await repo.save(new(Note, "k"))
    clock.now += 10**9
    assert await repo.get(Note, "k") is not None


async def test_sweep_drops_only_expired_entries():
    clock = FakeClock()
    repo = MemoryRepository(clock=clock)
    await repo.save(new(Crumb, "old", n=1))
    clock.now += 5
    await repo.save(new(Crumb, "young", n=2))
    await repo.save(new(Note, "forever"))
    clock.now += 6
    assert repo.sweep() == 1
    assert len(repo) == 2
    assert await repo.get(Crumb, "young") is not None


async def test_delete():
    repo = MemoryRepository()
    await repo.save(new(Note, "k"))
    assert await repo.delete(Note, "k") is True
    assert await repo.get(Note, "k") is None
    assert await repo.delete(Note, "k") is False


async def test_same_key_in_two_namespaces_is_two_entries():
    repo = MemoryRepository()
    await repo.save(new(Note, "k", text="note"))
    await repo.save(new(Crumb, "k", n=3))
    assert await repo.delete(Crumb, "k") is True
    note = await repo.get(Note, "k")
    assert note is not None and note.text == "note"


async def test_list_is_sorted_by_key_and_paginated():
    clock = FakeClock()
    repo = MemoryRepository(clock=clock)
    for key in ["c", "a", "d", "b"]:
        await repo.save(new(Note, key, text=key))
    await repo.save(new(Crumb, "other"))
    assert [n.text for n in await repo.list(Note)] == ["a", "b", "c", "d"]
    assert [n.text for n in await repo.list(Note, offset=1, limit=2)] == ["b", "c"]
    assert await repo.list(Note, offset=10) == []
    listed = await repo.list(Note, limit=1)
    listed[0].tags.append("x")
    fresh = await repo.get(Note, "a")
    assert fresh is not None and fresh.tags == []


async def test_list_skips_expired_entries():
    clock = FakeClock()
    repo = MemoryRepository(clock=clock)
    await repo.save(new(Crumb, "a", n=1))
    clock.now += 5
    await repo.save(new(Crumb, "b", n=2))
    clock.now += 6
    assert [c.n for c in await repo.list(Crumb)] == [2]
