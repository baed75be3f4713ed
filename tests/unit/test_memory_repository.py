"""The memory store: copies, versions, TTL, delete and list; writes kept per unit of work until
it commits, and slots reserved by a prepared unit."""

import pytest

from starmodel import ConcurrencyError, Entity
from starmodel.adapters.driven.stores.memory import MemoryRepository, MemoryStore


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


async def put(store: MemoryStore, *entities: Entity) -> None:
    """Save ``entities`` in one unit of work and commit it."""
    unit = MemoryRepository(store)
    await unit.begin()
    for entity in entities:
        await unit.save(entity)
    await unit.commit()


async def fetch(store: MemoryStore, cls: type[Entity], key: str) -> Entity | None:
    return await MemoryRepository(store).get(cls, key)


async def test_get_of_a_missing_key_is_none():
    assert await MemoryRepository().get(Note, "nobody") is None


async def test_save_then_get_round_trips_with_key_and_version():
    store = MemoryStore()
    note = new(Note, "k1", text="hello", tags=["a"])
    await put(store, note)
    assert note._sm_version == 1
    loaded = await fetch(store, Note, "k1")
    assert loaded is not None
    assert loaded.public_state() == note.public_state()
    assert (loaded._sm_key, loaded._sm_version) == ("k1", 1)


async def test_get_returns_detached_copies():
    store = MemoryStore()
    await put(store, new(Note, "k", tags=["a"], meta={"x": [1]}))
    first = await fetch(store, Note, "k")
    assert isinstance(first, Note)
    first.tags.append("b")
    first.meta["x"].append(2)
    first.text = "changed"
    again = await fetch(store, Note, "k")
    assert isinstance(again, Note)
    assert again.public_state()["tags"] == ["a"]
    assert again.meta == {"x": [1]}
    assert again.text == ""


async def test_save_keeps_a_copy_not_the_callers_object():
    store = MemoryStore()
    note = new(Note, "k", tags=["a"])
    unit = MemoryRepository(store)
    await unit.save(note)
    note.tags.append("before-commit")
    await unit.commit()
    note.tags.append("after-commit")
    loaded = await fetch(store, Note, "k")
    assert isinstance(loaded, Note) and loaded.tags == ["a"]


async def test_copies_are_detached_even_inside_tuples():
    store = MemoryStore()
    await put(store, new(Note, "k", pairs=([1],)))
    loaded = await fetch(store, Note, "k")
    assert isinstance(loaded, Note)
    loaded.pairs[0].append(2)
    again = await fetch(store, Note, "k")
    assert isinstance(again, Note) and again.pairs == ([1],)


async def test_stale_version_raises_concurrency_error_and_writes_nothing():
    store = MemoryStore()
    await put(store, new(Note, "k", text="v1"))
    reader_a = await fetch(store, Note, "k")
    reader_b = await fetch(store, Note, "k")
    assert isinstance(reader_a, Note) and isinstance(reader_b, Note)
    reader_a.text = "from a"
    await put(store, reader_a)
    reader_b.text = "from b"
    with pytest.raises(ConcurrencyError):
        await MemoryRepository(store).save(reader_b)
    stored = await fetch(store, Note, "k")
    assert isinstance(stored, Note) and (stored.text, stored._sm_version) == ("from a", 2)


async def test_creating_an_existing_key_raises_concurrency_error():
    store = MemoryStore()
    await put(store, new(Note, "k", text="first"))
    with pytest.raises(ConcurrencyError):
        await put(store, new(Note, "k", text="second"))
    stored = await fetch(store, Note, "k")
    assert isinstance(stored, Note) and stored.text == "first"


async def test_save_without_key_is_refused():
    with pytest.raises(ValueError, match="key"):
        await MemoryRepository().save(Note())


async def test_ttl_expiry_follows_the_injected_clock():
    clock = FakeClock()
    store = MemoryStore(clock)
    await put(store, new(Crumb, "k", n=1))
    clock.now += 9.9
    assert await fetch(store, Crumb, "k") is not None
    clock.now += 0.2
    assert await fetch(store, Crumb, "k") is None
    assert len(store) == 0


async def test_saving_refreshes_the_ttl():
    clock = FakeClock()
    store = MemoryStore(clock)
    await put(store, new(Crumb, "k", n=1))
    clock.now += 8
    crumb = await fetch(store, Crumb, "k")
    assert isinstance(crumb, Crumb)
    crumb.n = 2
    await put(store, crumb)
    clock.now += 8
    alive = await fetch(store, Crumb, "k")
    assert isinstance(alive, Crumb) and alive.n == 2


async def test_an_expired_key_can_be_created_again():
    clock = FakeClock()
    store = MemoryStore(clock)
    await put(store, new(Crumb, "k", n=1))
    clock.now += 11
    await put(store, new(Crumb, "k", n=5))
    again = await fetch(store, Crumb, "k")
    assert isinstance(again, Crumb) and (again.n, again._sm_version) == (5, 1)


async def test_entities_without_ttl_never_expire():
    clock = FakeClock()
    store = MemoryStore(clock)
    await put(store, new(Note, "k"))
    clock.now += 10**9
    assert await fetch(store, Note, "k") is not None


async def test_sweep_drops_only_expired_entries():
    clock = FakeClock()
    store = MemoryStore(clock)
    await put(store, new(Crumb, "old", n=1))
    clock.now += 5
    await put(store, new(Crumb, "young", n=2), new(Note, "forever"))
    clock.now += 6
    assert store.sweep() == 1
    assert len(store) == 2
    assert await fetch(store, Crumb, "young") is not None


async def test_delete():
    store = MemoryStore()
    await put(store, new(Note, "k"))
    unit = MemoryRepository(store)
    assert await unit.delete(Note, "k") is True
    assert await unit.get(Note, "k") is None
    assert await unit.delete(Note, "k") is False  # already gone, as this unit sees it
    assert await fetch(store, Note, "k") is not None  # not before the commit
    await unit.commit()
    assert await fetch(store, Note, "k") is None
    assert await MemoryRepository(store).delete(Note, "k") is False


async def test_same_key_in_two_namespaces_is_two_entries():
    store = MemoryStore()
    await put(store, new(Note, "k", text="note"), new(Crumb, "k", n=3))
    unit = MemoryRepository(store)
    assert await unit.delete(Crumb, "k") is True
    await unit.commit()
    note = await fetch(store, Note, "k")
    assert isinstance(note, Note) and note.text == "note"


async def test_list_is_sorted_by_key_and_paginated():
    store = MemoryStore()
    await put(store, *(new(Note, key, text=key) for key in ["c", "a", "d", "b"]), new(Crumb, "other"))
    repo = MemoryRepository(store)
    assert [n.text for n in await repo.list(Note)] == ["a", "b", "c", "d"]
    assert [n.text for n in await repo.list(Note, offset=1, limit=2)] == ["b", "c"]
    assert await repo.list(Note, offset=10) == []
    listed = await repo.list(Note, limit=1)
    listed[0].tags.append("x")
    fresh = await repo.get(Note, "a")
    assert isinstance(fresh, Note) and fresh.tags == []


async def test_list_skips_expired_entries():
    clock = FakeClock()
    store = MemoryStore(clock)
    await put(store, new(Crumb, "a", n=1))
    clock.now += 5
    await put(store, new(Crumb, "b", n=2))
    clock.now += 6
    assert [c.n for c in await MemoryRepository(store).list(Crumb)] == [2]


# --- writes wait for the commit of their unit of work ----------------------------------------


async def test_writes_are_seen_by_their_own_unit_only_until_it_commits():
    store = MemoryStore()
    await put(store, new(Note, "gone"))
    unit = MemoryRepository(store)
    await unit.begin()
    await unit.save(new(Note, "new", text="mine"))
    assert await unit.delete(Note, "gone") is True
    mine = await unit.get(Note, "new")
    assert isinstance(mine, Note) and (mine.text, mine._sm_version) == ("mine", 1)
    assert [n._sm_key for n in await unit.list(Note)] == ["new"]
    other = MemoryRepository(store)
    assert await other.get(Note, "new") is None
    assert [n._sm_key for n in await other.list(Note)] == ["gone"]
    await unit.commit()
    assert [n._sm_key for n in await other.list(Note)] == ["new"]


async def test_rollback_forgets_the_writes():
    store = MemoryStore()
    await put(store, new(Note, "k", text="kept"))
    unit = MemoryRepository(store)
    await unit.begin()
    loaded = await unit.get(Note, "k")
    assert isinstance(loaded, Note)
    loaded.text = "changed"
    await unit.save(loaded)
    await unit.save(new(Note, "new"))
    await unit.rollback()
    await unit.commit()  # nothing left to apply
    stored = await fetch(store, Note, "k")
    assert isinstance(stored, Note) and (stored.text, stored._sm_version) == ("kept", 1)
    assert await fetch(store, Note, "new") is None


async def test_a_commit_checks_the_versions_again():
    store = MemoryStore()
    await put(store, new(Note, "k", text="v1"))
    slow = MemoryRepository(store)
    copy = await slow.get(Note, "k")
    assert isinstance(copy, Note)
    copy.text = "slow"
    await slow.save(copy)  # the version still fits here...
    winner = await fetch(store, Note, "k")
    assert isinstance(winner, Note)
    winner.text = "fast"
    await put(store, winner)
    with pytest.raises(ConcurrencyError):  # ...but no longer at commit
        await slow.commit()
    await slow.rollback()
    stored = await fetch(store, Note, "k")
    assert isinstance(stored, Note) and (stored.text, stored._sm_version) == ("fast", 2)


async def test_a_prepared_unit_holds_its_slots_until_it_commits():
    store = MemoryStore()
    await put(store, new(Note, "k", text="v1"))
    first, second, third = MemoryRepository(store), MemoryRepository(store), MemoryRepository(store)
    for unit, text in ((first, "first"), (second, "second"), (third, "third")):
        loaded = await unit.get(Note, "k")
        assert isinstance(loaded, Note)
        loaded.text = text
        await unit.save(loaded)
    await first.prepare()
    with pytest.raises(ConcurrencyError):
        await second.prepare()
    with pytest.raises(ConcurrencyError):
        await third.commit()  # a commit without prepare checks the reservation too
    await first.commit()
    assert store.reserved == {}
    stored = await fetch(store, Note, "k")
    assert isinstance(stored, Note) and (stored.text, stored._sm_version) == ("first", 2)


async def test_a_failed_prepare_holds_nothing_and_a_rollback_releases():
    store = MemoryStore()
    await put(store, new(Note, "a"), new(Note, "b"))
    holder = MemoryRepository(store)
    b = await holder.get(Note, "b")
    assert isinstance(b, Note)
    await holder.save(b)
    await holder.prepare()
    loser = MemoryRepository(store)
    for key in ("a", "b"):
        loaded = await loser.get(Note, key)
        assert isinstance(loaded, Note)
        await loser.save(loaded)
    with pytest.raises(ConcurrencyError):
        await loser.prepare()  # "a" was free, "b" is held: "a" is not kept either
    assert set(store.reserved) == {("mem_note", "b")}
    await loser.rollback()
    await holder.rollback()
    assert store.reserved == {}
    await put(store, *[e for e in [await fetch(store, Note, "a"), await fetch(store, Note, "b")] if e])
    assert [n._sm_version for n in await MemoryRepository(store).list(Note)] == [2, 2]


async def test_a_repository_without_a_store_makes_its_own():
    first, second = MemoryRepository(), MemoryRepository()
    await first.save(new(Note, "k"))
    await first.commit()
    assert len(first) == 1 and len(second) == 0
    assert await first.get(Note, "k") is not None
