"""The live hub on its own: topics, bounded queues for slow tabs, replay and resync."""

import asyncio
from collections import deque

import pytest
from sm_http import SSEEvent, parse_sse

from starmodel import EntityChanged
from starmodel.adapters.driving.live.stream import LiveHub
from starmodel.app.bus import delivery_position


async def no_state(session_id: str) -> dict:
    return {}


def change(scope="global", session_id=None, origin_tab=None, count=1):
    return EntityChanged(
        namespace="thing",
        key=session_id or "global",
        scope=scope,
        changes={"count": count},
        session_id=session_id,
        origin_tab=origin_tab,
    )


async def next_body(events, timeout=1.0) -> str:
    return await asyncio.wait_for(anext(events), timeout)


async def test_changes_go_to_matching_topics_only():
    hub = LiveHub(no_state)
    alice = hub.open("alice", "a1")
    bob = hub.open("bob", "b1")
    await hub.on_entity_changed(change())
    await hub.on_entity_changed(change("session", "alice", count=2))
    assert len(alice.pending) == 2
    assert len(bob.pending) == 1


async def test_origin_tab_is_skipped():
    hub = LiveHub(no_state)
    same_tab = hub.open("alice", "a1")
    other_tab = hub.open("alice", "a2")
    await hub.on_entity_changed(change("session", "alice", origin_tab="a1"))
    assert len(same_tab.pending) == 0
    assert len(other_tab.pending) == 1


async def test_same_tab_id_in_another_session_still_gets_global_changes():
    hub = LiveHub(no_state)
    alice = hub.open("alice", "tab-1")
    bob = hub.open("bob", "tab-1")  # tab ids come from the browser: they can collide
    change_by_bob = EntityChanged("thing", "global", "global", {"count": 1}, None, "tab-1", "bob")
    await hub.on_entity_changed(change_by_bob)
    assert len(bob.pending) == 0
    assert len(alice.pending) == 1


async def test_slow_tab_is_dropped_with_bounded_memory():
    hub = LiveHub(no_state, queue_size=3)
    slow = hub.open("alice", "a1")
    for count in range(10):
        await hub.on_entity_changed(change(count=count))
    assert slow.closed == "slow consumer"
    assert len(slow.pending) == 0
    events = hub.events(slow, None)
    first = SSEEvent.parse((await next_body(events)).strip())  # a full resync, nothing queued
    assert first is not None and first.signals == {} and first.id == hub.last_event_id
    with pytest.raises(StopAsyncIteration):  # a dropped stream ends; the tab reconnects
        await next_body(events)
    assert hub.open_count() == 0


async def test_dropped_tab_catches_up_on_reconnect():
    hub = LiveHub(no_state, queue_size=2, replay_size=100)
    stream = hub.open("alice", "a1")
    await hub.on_entity_changed(change(count=0))
    seen_id = hub.last_event_id
    for count in range(1, 6):
        await hub.on_entity_changed(change(count=count))
    assert stream.closed
    again = hub.open("alice", "a1")
    body = await next_body(hub.events(again, seen_id))
    blocks = [SSEEvent.parse(b) for b in body.split("\n\n") if b.strip()]
    assert [b.id for b in blocks] == [f"{hub.epoch}-{n}" for n in range(2, 7)]


async def test_replay_buffer_overflow_means_full_resync():
    async def state(session_id: str) -> dict:
        return {"thing": {"count": 42}}

    hub = LiveHub(state, replay_size=2)
    await hub.on_entity_changed(change(count=1))
    old_id = hub.last_event_id
    for count in range(2, 6):
        await hub.on_entity_changed(change(count=count))
    stream = hub.open("alice", "a1")
    resync = SSEEvent.parse((await next_body(hub.events(stream, old_id))).strip())
    assert resync is not None
    assert resync.signals == {"thing": {"count": 42}}
    assert resync.id == hub.last_event_id


async def test_idle_stream_gets_heartbeats():
    hub = LiveHub(no_state, heartbeat=0.02)
    stream = hub.open("alice", "a1")
    events = hub.events(stream, None)
    assert (await next_body(events)).startswith("event: datastar-patch-signals\nid: ")
    assert (await next_body(events)).startswith(": ping")
    await events.aclose()
    assert hub.open_count() == 0


async def test_pending_changes_are_sent_in_one_batch():
    hub = LiveHub(no_state)
    stream = hub.open("alice", "a1")
    events = hub.events(stream, None)
    await next_body(events)
    await hub.on_entity_changed(change(count=1))
    await hub.on_entity_changed(change(count=2))
    batch = await next_body(events)
    assert batch.count("event: datastar-patch-signals") == 2
    await events.aclose()


# --- ids from a bus that spans processes --------------------------------------------------


async def delivered(hub: LiveHub, position: tuple[str, int], count: int) -> None:
    """What a bus over Redis does: hand the hub a fact with its place in the global order."""
    token = delivery_position.set(position)
    try:
        await hub.on_entity_changed(change(count=count))
    finally:
        delivery_position.reset(token)


async def test_ids_are_the_bus_positions_so_any_process_can_resume_a_tab():
    first, second = LiveHub(no_state), LiveHub(no_state)  # two processes
    for hub in (first, second):
        for seq in (5, 6, 7):
            await delivered(hub, ("e1", seq), count=seq)
    assert first.last_event_id == second.last_event_id == "e1-7"
    stream = second.open("alice", "a1")  # the tab saw e1-5 on the first process
    missed = parse_sse(await next_body(second.events(stream, "e1-5")))
    assert [(event.id, event.signals) for event in missed] == [
        ("e1-6", {"thing": {"count": 6}}), ("e1-7", {"thing": {"count": 7}}),
    ]


async def test_ids_from_before_the_hub_heard_of_them_get_a_resync():
    hub = LiveHub(no_state)
    await delivered(hub, ("e1", 10), count=10)  # this process joined at fact 10
    caught_up = hub.missed_since("e1-9", hub.open("a", "t"))  # everything after 9 is here
    assert caught_up is not None and len(caught_up) == 1
    assert hub.missed_since("e1-8", hub.open("a", "t")) is None  # fact 9 never reached it
    assert hub.missed_since("e1-11", hub.open("a", "t")) is None  # ahead of it: resync


async def test_a_tab_from_before_this_process_also_gets_its_memory_state():
    """A restarted (or another) process joined the bus at fact 10; a tab whose last message was
    fact 9 is caught up from the replay, and gets the session state this process holds now
    (memory entities start afresh after a restart), not only the facts."""

    async def state(session_id: str) -> dict:
        return {"counter": {"count": 0}}

    hub = LiveHub(state)
    await delivered(hub, ("e1", 10), count=10)
    await delivered(hub, ("e1", 11), count=11)
    came_back = parse_sse(await next_body(hub.events(hub.open("alice", "a1"), "e1-9")))
    assert [e.signals for e in came_back] == [{"thing": {"count": 10}}, {"thing": {"count": 11}},
                                              {"counter": {"count": 0}}]
    stayed = parse_sse(await next_body(hub.events(hub.open("alice", "a2"), "e1-10")))
    assert [e.signals for e in stayed] == [{"thing": {"count": 11}}]  # it saw this process's own


async def test_a_new_bus_epoch_means_resync():
    hub = LiveHub(no_state)
    await delivered(hub, ("e1", 3), count=3)
    await delivered(hub, ("e2", 1), count=4)  # Redis lost its data and numbers afresh
    assert hub.last_event_id == "e2-1"
    assert hub.missed_since("e1-3", hub.open("a", "t")) is None
    assert hub.missed_since("e2-0", hub.open("a", "t")) is not None


async def test_local_facts_while_the_bus_is_away_use_the_hubs_own_numbering():
    hub = LiveHub(no_state)
    await delivered(hub, ("e1", 3), count=3)
    await hub.on_entity_changed(change(count=4))  # delivered in this process only
    assert hub.last_event_id.startswith(hub.own_epoch + "-")
    assert hub.missed_since("e1-3", hub.open("a", "t")) is None


async def test_resync_all_ends_every_stream_and_forces_a_full_resync():
    hub = LiveHub(no_state)
    await hub.on_entity_changed(change(count=1))
    current = hub.last_event_id
    stream = hub.open("alice", "a1")
    hub.resync_all()
    assert stream.closed == "resync"
    assert hub.missed_since(current, hub.open("alice", "a1")) is None  # up to date, yet resynced


async def test_a_tab_from_another_process_is_caught_up_from_the_bus_history():
    """This process never held the tab's messages, but the bus still has the facts: they are
    turned into messages for that tab alone (the other streams get nothing twice)."""
    facts = [(("e1", 8), change(count=8)), (("e1", 9), change("session", "bob", count=1)),
             (("e1", 10), change(count=10))]

    async def history(epoch: str, after: int, limit: int):
        return [item for item in facts if item[0][1] > after] if epoch == "e1" else None

    hub = LiveHub(no_state)
    hub.fact_handlers = [(EntityChanged, hub.on_entity_changed)]
    hub.history = history
    bystander = hub.open("carol", "c1")
    stream = hub.open("alice", "a1")
    missed = parse_sse(await next_body(hub.events(stream, "e1-7")))
    assert [(event.id, event.signals) for event in missed] == [
        ("e1-8", {"thing": {"count": 8}}), ("e1-10", {"thing": {"count": 10}}),  # not bob's
    ]
    assert len(bystander.pending) == 0 and hub.replay == deque()
    resync = parse_sse(await next_body(hub.events(hub.open("alice", "a2"), "e0-7")))
    assert resync[0].signals == {} and resync[0].id == hub.last_event_id  # unknown epoch
