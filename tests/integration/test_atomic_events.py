"""One event, two stores: every pair of memory, SQL (SQLite, PostgreSQL), Redis, browser-kept
and plugin (jsonfile) stores, 50 concurrent calls through the HTTP layer per outcome (success;
refused by a ValueError after both changes, by a unique violation, or by the database at
commit; concurrent writers; Redis stopped mid-commit). After each: every store changed by
exactly the number of answered (2xx) calls, and facts published for exactly those.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from atomic_entities import COUNTERS, TAKEN, ClientCounter, RedisShared, SqlCounter, Taken
from atomic_support import CALLS, PAIRS, OwnRedis, Pair, PairApp, settle

from starmodel.testing import CallResult, EventClient
from starmodel.testing.client import BrowserSession

REFUSED = {"value_error": 422, "unique": 422, "fail_commit": 422, "conflict": 409, "redis_down": 503}


@dataclass
class Round:
    """The answers of one outcome's calls and what they changed."""

    answers: list[CallResult]
    counter: int  # change of the counters the events ran on (browser-kept: their answers)
    shared: int  # change of the shared counter

    @property
    def answered(self) -> int:
        return sum(1 for answer in self.answers if answer.ok)


class Caller:
    """Runs the calls of one pair against its app, and reads back what they changed."""

    def __init__(self, app: PairApp, client: EventClient) -> None:
        self.app, self.client = app, client
        self.counter = COUNTERS[app.pair.counter]
        self.is_client = self.counter is ClientCounter
        self.keys = ["1", "2"] if self.counter is SqlCounter else ["k1", "k2"]
        self.sessions: list[BrowserSession] = [client, client.session()]

    async def open_counters(self) -> None:
        if not self.is_client:
            for key in self.keys:
                assert (await self.client.call(self.counter.open, record=key)).ok  # type: ignore[attr-defined]
        if self.app.pair.uses_sql:
            assert (await self.client.call(Taken.claim, name=TAKEN)).ok

    async def call(self, target: int, mode: str) -> CallResult:
        event = self.counter.bump  # type: ignore[attr-defined]
        partner = self.app.pair.shared.namespace()
        if self.is_client:  # each call brings the tab's state: n=0
            signals = {ClientCounter.namespace(): {"n": 0}}
            return await self.sessions[target].call(event, _signals=signals, partner=partner, mode=mode)
        return await self.client.call(event, _key=self.keys[target], partner=partner, mode=mode)

    async def counters(self) -> int:
        if self.is_client:
            return 0
        return sum([await self.app.count(self.counter, key) for key in self.keys])

    def kept_by_browsers(self, answers: list[CallResult]) -> int:
        """What the tabs keep after the answers: each call sent n=0, so 1 per answer that
        carried the counter back (and only answered calls may carry it)."""
        carried = [answer.signals.get(ClientCounter.namespace(), {}).get("n") for answer in answers]
        for answer, n in zip(answers, carried, strict=True):
            assert n == (1 if answer.ok else None), f"{answer!r} sent back the tab's counter as {n}"
        return carried.count(1)

    async def run(self, outcome: str, own_redis: OwnRedis | None) -> Round:
        self.app.facts.clear()
        before_counter, before_shared = await self.counters(), await self.app.shared()
        mode = outcome if outcome in ("value_error", "unique", "fail_commit") else "ok"
        targets = [n % 2 if outcome == "conflict" else 0 for n in range(CALLS)]
        calls = [asyncio.create_task(self.call(target, mode)) for target in targets]
        held: dict[str, int] = {}
        if outcome == "redis_down":
            assert own_redis is not None
            held = await self._stop_redis_midway(calls, own_redis)
        answers = list(await asyncio.gather(*calls))
        counter = held["counter"] if "counter" in held else await self.counters()
        shared = held["shared"] if "shared" in held else await self.app.shared()
        if self.is_client:
            counter, before_counter = self.kept_by_browsers(answers), 0
        return Round(answers, counter - before_counter, shared - before_shared)

    async def _stop_redis_midway(
        self, calls: list[asyncio.Task[CallResult]], own_redis: OwnRedis
    ) -> dict[str, int]:
        """Once some calls are answered: hold Redis's writes (commits in flight wait), read
        what it holds, and stop it; the calls still running meet a Redis that is gone."""
        async with asyncio.timeout(30):
            while sum(1 for c in calls if c.done() and c.result().ok) < 10:
                await asyncio.sleep(0.002)
        await own_redis.pause_writes()
        await settle()
        held = {}
        if self.app.pair.counter == "redis":
            held["counter"] = await self.counters()
        if self.app.pair.shared is RedisShared:
            held["shared"] = await self.app.shared()
        own_redis.kill()
        return held


@pytest.mark.parametrize("pair", PAIRS, ids=[pair.id for pair in PAIRS])
async def test_an_event_over_two_stores_is_applied_once_per_answer_or_not_at_all(
    pair: Pair, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if pair.database == "postgresql":
        database_url = request.getfixturevalue("postgres").url
    else:
        database_url = f"sqlite:///{tmp_path / 'app.db'}"
    own_redis = OwnRedis(tmp_path) if pair.uses_redis else None
    if own_redis is not None:
        own_redis.start()
    try:
        app = PairApp.build(pair, database_url, own_redis.url if own_redis else None, tmp_path / "json")
        if pair.uses_sql:
            await app.add_fuse()
        async with EventClient(app.sm, timeout=30) as client:
            caller = Caller(app, client)
            await caller.open_counters()
            for outcome in pair.outcomes():
                done = await caller.run(outcome, own_redis)
                check(pair, outcome, done, app)
    finally:
        if own_redis is not None:
            own_redis.kill()


def check(pair: Pair, outcome: str, done: Round, app: PairApp) -> None:
    statuses = sorted({answer.status for answer in done.answers})
    ran_on, shared = app.published()
    print(f"atomic {pair.id} {outcome}: calls={len(done.answers)} answered={done.answered} "
          f"statuses={statuses} counter+{done.counter} shared+{done.shared} facts={ran_on}/{shared}")
    refused = [answer for answer in done.answers if not answer.ok]
    if pair.partly_saved(outcome):  # the documented case: saved in Redis, not in SQLite
        assert statuses == [503] and all("partly saved" in (a.error or "") for a in refused)
        assert (done.counter, done.shared) == (0, CALLS), "each call applied at most once"
        assert (ran_on, shared) == (0, CALLS)
        return
    if outcome == "success":
        assert done.answered == CALLS, statuses
    elif outcome in ("value_error", "unique", "fail_commit"):
        assert done.answered == 0, statuses
    else:
        assert done.answered >= (10 if outcome == "redis_down" else 1), statuses
    assert {a.status for a in refused} <= {REFUSED.get(outcome)}, [repr(a) for a in refused[:3]]
    assert done.counter == done.answered, f"{outcome}: counters +{done.counter} for {done.answered} answers"
    assert done.shared == done.answered, f"{outcome}: shared +{done.shared} for {done.answered} answers"
    if pair.counter != "client":
        assert ran_on == done.answered, f"{outcome}: {ran_on} facts for {done.answered} answers"
    assert shared == done.answered, f"{outcome}: {shared} facts for {done.answered} answers"
