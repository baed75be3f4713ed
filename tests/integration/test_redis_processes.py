"""Two (or one) real server processes of ``redis_app.py`` sharing the real Redis.

Every test has a Redis key prefix of its own (``redis_prefix``), so its entities, bus
numbering and bus log are its own. Servers are ``starmodel run`` subprocesses
(``app_servers`` in conftest.py); the test talks to them over real sockets.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis import asyncio as aioredis
from redis_process_support import (
    EVENT_ID,
    MakeServer,
    answer_signals,
    browser,
    change_of,
    live,
    post,
    start_together,
    wait_for,
)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of our own, to read and write what the servers keep in Redis."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


def seq_of(event_id: str | None) -> int:
    assert event_id is not None and EVENT_ID.match(event_id), event_id
    return int(event_id.rsplit("-", 1)[1])


async def test_200_concurrent_increments_over_two_processes_all_count(
    app_servers: MakeServer, redis: aioredis.Redis, redis_prefix: str
) -> None:
    """100 increments sent at once to each of two processes end at exactly 200: every request
    is answered 200 with a count of its own, both pages show 200, the next event answers 201
    and the Redis hash holds 201 (version 201)."""
    a, b = app_servers("a"), app_servers("b")
    await start_together(a, b)
    async with browser() as client:
        answers = await asyncio.gather(
            *(post(client, server, "/hits/increment") for server in (a, b) for _ in range(100))
        )
        assert [r.status_code for r in answers] == [200] * 200, {r.status_code for r in answers}
        counts = sorted(answer_signals(r, "hits")["count"] for r in answers)
        assert counts == list(range(1, 201))  # each increment saw the one before it
        for server in (a, b):
            page = await client.get(f"{server.url}/")
            assert page.status_code == 200 and '<p id="hits">hits=200</p>' in page.text, page.text
        last = await post(client, b, "/hits/increment")  # an event answer reads Redis too
        assert answer_signals(last, "hits") == {"count": 201}
    stored = await redis.hgetall(f"{redis_prefix}:hits:global")
    assert json.loads(stored["d"]) == {"count": 201} and stored["v"] == "201"
    assert await redis.zrange(f"{redis_prefix}:hits", 0, -1) == ["global"]
    a.assert_no_traceback()
    b.assert_no_traceback()


async def test_changes_made_on_a_reach_live_streams_on_b_with_the_same_ids(
    app_servers: MakeServer, database_url: str
) -> None:
    """An event POSTed to process A reaches a live stream held by process B, for a Redis
    entity, a memory entity and a SQL record (watched by the tab); the event ids are bus
    positions, the same on B's stream as on A's; one session cookie works on both."""
    a = app_servers("a", database_url)  # one SQL database for both processes
    b = app_servers("b", database_url)
    await start_together(a)  # one at a time: both would create the table at start
    await start_together(b)
    async with browser() as tab, live(tab, b, watch="note") as on_b, live(tab, a, watch="note") as on_a:
        first_b, first_a = await on_b.next(), await on_a.next()  # the initial state
        assert first_b.signals["hits"] == first_a.signals["hits"] == {"count": 0}

        assert (await post(tab, a, "/hits/increment", amount=5)).status_code == 200
        hits_b, hits_a = await change_of(on_b, "hits"), await change_of(on_a, "hits")
        assert hits_b.signals == hits_a.signals == {"hits": {"count": 5}}
        assert hits_b.id == hits_a.id and EVENT_ID.match(hits_b.id or ""), (hits_b.id, hits_a.id)

        assert (await post(tab, a, "/clicks/increment")).status_code == 200  # memory, on A
        clicks_b, clicks_a = await change_of(on_b, "clicks"), await change_of(on_a, "clicks")
        assert clicks_b.signals == clicks_a.signals == {"clicks": {"count": 1}}
        assert clicks_b.id == clicks_a.id

        created = await post(tab, a, "/note/create", text="hello")
        assert created.status_code == 200, created.text
        (key,) = (k for k in answer_signals(created, "note") if k != "_errors")
        note_b, note_a = await change_of(on_b, "note"), await change_of(on_a, "note")
        row = {"id": int(key), "text": "hello", "stars": 0}
        assert note_b.signals == note_a.signals == {"note": {key: row}}
        assert (await post(tab, a, "/note/star", key=key)).status_code == 200
        star_b, star_a = await change_of(on_b, "note"), await change_of(on_a, "note")
        assert star_b.signals == star_a.signals == {"note": {key: {"stars": 1}}}
        assert star_b.id == star_a.id and note_b.id == note_a.id

        ids = [e.id for e in (hits_b, clicks_b, note_b, star_b)]
        assert len({i.split("-")[0] for i in ids if i}) == 1, ids  # one epoch
        seqs = [seq_of(i) for i in ids]
        assert seqs == sorted(seqs) and len(set(seqs)) == 4, ids

        # no sticky sessions: the session cookie set by A is B's session too
        assert answer_signals(await post(tab, a, "/visits/increment"), "visits") == {"count": 1}
        assert answer_signals(await post(tab, b, "/visits/increment"), "visits") == {"count": 2}
    a.assert_no_traceback()
    b.assert_no_traceback()


async def test_a_tab_resumes_after_its_last_event_id_on_either_process(
    app_servers: MakeServer, redis: aioredis.Redis, redis_prefix: str
) -> None:
    """A tab that was away gets exactly what it missed when it reconnects with its
    Last-Event-ID: on the process it left, on the other one, and on a process restarted
    meanwhile (caught up from the Redis log). When what it missed can no longer be replayed
    (the log was trimmed, or the id is of another numbering) it gets a full resync: the
    current values of everything it shows."""
    a, b = app_servers("a"), app_servers("b")
    await start_together(a, b)
    async with browser() as tab:
        async with live(tab, b) as on_b:
            await on_b.next()
            assert (await post(tab, a, "/hits/increment")).status_code == 200
            seen = await change_of(on_b, "hits")
            assert seen.signals == {"hits": {"count": 1}}
            last_id = seen.id
            assert last_id is not None
        epoch, first = last_id.split("-")[0], seq_of(last_id)

        # the tab is away: three changes on A
        for path in ("/hits/increment", "/clicks/increment", "/hits/increment"):
            assert (await post(tab, a, path)).status_code == 200
        missed = [({"hits": {"count": 2}}, first + 1), ({"clicks": {"count": 1}}, first + 2),
                  ({"hits": {"count": 3}}, first + 3)]
        for server in (b, a):
            # the stream joins before it looks at what was missed: a fact still on its way to
            # this process arrives right after the replayed ones, in order
            async with live(tab, server, last_event_id=last_id) as again:
                got = [await again.next() for _ in range(len(missed))]
            assert [(e.signals, seq_of(e.id)) for e in got] == missed, server.name

        # B restarts (its own replay buffer is gone) while a change is made on A
        await b.stop()
        assert answer_signals(await post(tab, a, "/hits/increment"), "hits") == {"count": 4}
        b.start()
        await b.wait_up()
        missed.append(({"hits": {"count": 4}}, first + 4))
        async with live(tab, b, last_event_id=last_id) as fresh:
            got = [await fresh.next() for _ in range(len(missed))]
            assert [(e.signals, seq_of(e.id)) for e in got] == missed
            assert {e.id.split("-")[0] for e in got if e.id} == {epoch}
            # then what the new B holds now (its memory entities start afresh)
            state = await fresh.next()
            assert state.signals["hits"] == {"count": 4} and state.signals["clicks"] == {"count": 0}
            # and from now on the new B numbers facts as A does
            assert (await post(tab, a, "/hits/increment")).status_code == 200
            after = await change_of(fresh, "hits")
            assert after.signals == {"hits": {"count": 5}} and after.id == f"{epoch}-{first + 5}"

        # what cannot be replayed any more gets a full resync with the current values: on the
        # restarted B once the Redis log is trimmed, anywhere for an id of an unknown numbering
        await redis.xtrim(f"{redis_prefix}:bus:log", maxlen=0)
        for server, stale in ((b, last_id), (b, f"00000000-{first}"), (a, f"00000000-{first}")):
            async with live(tab, server, last_event_id=stale) as resynced:
                full = await resynced.next()
            assert full.type == "datastar-patch-signals", (stale, server.name)
            assert full.signals["hits"] == {"count": 5}, (stale, server.name)  # from Redis
            assert {"clicks", "visits", "burst"} <= set(full.signals)  # everything
            assert full.id == f"{epoch}-{first + 5}"  # where the tab resumes next time
    a.assert_no_traceback()
    b.assert_no_traceback()


async def test_a_redis_entity_with_a_ttl_expires_and_comes_back_fresh(
    app_servers: MakeServer, redis: aioredis.Redis, redis_prefix: str
) -> None:
    """``ttl = 1``: the key is gone from Redis about a second after the last change; the next
    event starts from the defaults, and a tab opened meanwhile shows the defaults."""
    server = app_servers("a")
    await start_together(server)
    key = f"{redis_prefix}:burst:global"
    async with browser() as tab:
        first = await post(tab, server, "/burst/increment")
        assert answer_signals(first, "burst") == {"count": 1, "label": "used"}
        assert 0 < await redis.pttl(key) <= 1000
        second = await post(tab, server, "/burst/increment")  # within the TTL: kept, TTL renewed
        assert answer_signals(second, "burst") == {"count": 2}  # what changed
        assert 0 < await redis.pttl(key) <= 1000

        async def expired() -> bool:
            return await redis.exists(key) == 0

        await wait_for(expired, f"{key} expired", timeout=5, interval=0.05)
        async with live(tab, server) as on_tab:
            initial = await on_tab.next()
            assert initial.signals["burst"] == {"count": 0, "label": "fresh"}
        again = await post(tab, server, "/burst/increment")
        assert answer_signals(again, "burst") == {"count": 1, "label": "used"}
        stored = await redis.hgetall(key)
        assert stored["v"] == "1" and json.loads(stored["d"]) == {"count": 1, "label": "used"}
    server.assert_no_traceback()


def assert_clear_503(answer: httpx.Response, key: str) -> None:
    """A 503 whose error header and toast name the Redis key, and that changed nothing in the
    page (no signals)."""
    assert answer.status_code == 503, (answer.status_code, answer.text)
    message = answer.headers.get("x-starmodel-error", "")
    assert key in message, message
    assert "datastar-patch-elements" in answer.text and "starmodel-toasts" in answer.text
    assert key in answer.text and "datastar-patch-signals" not in answer.text


DAMAGED: list[dict[Any, str]] = [  # hashes under an entity's key that are not a StarModel record
    {"v": "1", "d": "not json", "o": ""},
    {"v": "1", "d": '{"count": "many"}', "o": ""},
    {"v": "one", "d": '{"count": 1}', "o": ""},
    {"something": "else"},
]


async def test_unreadable_data_under_an_entity_key_is_a_clear_503(
    app_servers: MakeServer, redis: aioredis.Redis, redis_prefix: str
) -> None:
    """Damaged or foreign fields in an entity's hash: its events answer 503 naming the key,
    nothing is written, other entities keep working; once the key is deleted it works again."""
    server = app_servers("a")
    await start_together(server)
    key = f"{redis_prefix}:hits:global"
    async with browser() as tab:
        for fields in DAMAGED:
            await redis.hset(key, mapping=fields)
            for _ in range(2):  # the same answer again: the server is not stuck
                assert_clear_503(await post(tab, server, "/hits/increment"), key)
            assert await redis.hgetall(key) == fields, "nothing is written over it"
            assert (await post(tab, server, "/clicks/increment")).status_code == 200
            await redis.delete(key)
            assert answer_signals(await post(tab, server, "/hits/increment"), "hits") == {"count": 1}
            await redis.delete(key, f"{redis_prefix}:hits")
    server.assert_no_traceback()


async def test_a_key_of_another_type_under_an_entity_key_is_a_clear_503(
    app_servers: MakeServer, redis: aioredis.Redis, redis_prefix: str
) -> None:
    """A string, list or set where an entity's hash belongs (another program's key): its
    events answer 503 naming the key, other entities keep working; deleted, it works again."""
    server = app_servers("a")
    await start_together(server)
    key = f"{redis_prefix}:hits:global"
    foreign = {
        "string": lambda: redis.set(key, "plain string"),
        "list": lambda: redis.rpush(key, "x"),
        "set": lambda: redis.sadd(key, "x"),
    }
    async with browser() as tab:
        for kind, write in foreign.items():
            await write()
            answer = await post(tab, server, "/hits/increment")
            assert answer.status_code == 503, (kind, answer.status_code, answer.text)
            assert_clear_503(answer, key)
            assert await redis.type(key) == kind, "nothing is written over it"
            assert (await post(tab, server, "/clicks/increment")).status_code == 200
            await redis.delete(key)
            assert answer_signals(await post(tab, server, "/hits/increment"), "hits") == {"count": 1}
            await redis.delete(key, f"{redis_prefix}:hits")
    server.assert_no_traceback()


async def test_a_foreign_value_at_the_class_index_key_is_a_503_that_writes_nothing(
    app_servers: MakeServer, redis: aioredis.Redis, redis_prefix: str
) -> None:
    """Another program's string at ``<prefix>:hits`` (where StarModel keeps the class's key
    index): the event answers 503 naming that key, and, as every 503 promises, nothing is
    written: the entity's hash stays absent and a retry does not count twice."""
    server = app_servers("a")
    await start_together(server)
    index, record = f"{redis_prefix}:hits", f"{redis_prefix}:hits:global"
    await redis.set(index, "another program's value")
    async with browser() as tab:
        for _ in range(2):
            answer = await post(tab, server, "/hits/increment")
            written = await redis.hgetall(record)
            assert written == {}, f"the {answer.status_code} answer wrote the entity anyway: {written}"
            assert_clear_503(answer, index)
        assert await redis.get(index) == "another program's value"
        await redis.delete(index)
        assert answer_signals(await post(tab, server, "/hits/increment"), "hits") == {"count": 1}
    server.assert_no_traceback()
