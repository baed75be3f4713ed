"""What presence costs, measured against the same work without it, in the same run.

* **Tab cost**: live streams opened, given their first message and closed, one after another,
  in one app: (p) each tab's page shows an instance that keeps presence (join, push, leave),
  against (b) the same tabs showing nothing. Printed: tabs per CPU-second of each and ``p/b``
  (CPU, not wall time: each push waits ``gather`` seconds for others on purpose).
* **A burst**: ``--burst`` tabs open on one instance at once (a deploy's reconnections): the
  pushes the first of them gets (gathered: a few, not one per tab), and the time until every
  tab has the full list.
* **Across processes**: two apps sharing Redis (as two server processes would): a tab opens
  on one, and the time until a tab on the other gets the new list (median and 95th
  percentile, milliseconds).
* **A beat**: one process renewing ``--viewers`` connections spread over ``--instances``
  instances and looking at each of them again, in Redis and in memory (milliseconds).

Needs Redis at ``--redis`` (default ``redis://127.0.0.1:6379/0``); keys go under a prefix of
their own, deleted at the end.

Usage::

    python bench/presence_cost.py [--tabs 2000] [--crossings 200] [--burst 300] [--viewers 1000]
        [--instances 100]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from typing import Any

from starmodel import Entity, StarModel, Viewer
from starmodel.adapters.driven.presence import MemoryPresenceTracker
from starmodel.adapters.driven.presence.redis import RedisPresenceTracker
from starmodel.adapters.driven.stores.redis import RedisConnection
from starmodel.app.bus import InProcessBus
from starmodel.app.presence import PresenceService


class BenchDoc(Entity):
    # kept in each process's memory even with REDIS_URL: only presence goes to Redis
    model_config = {"scope": "global", "presence": True, "namespace": "bench_doc", "per_process": True}
    n: int = 0


def app(folder: str, **options: Any) -> StarModel:
    return StarModel(entities=[BenchDoc], secret_key="bench", migrations_dir=f"{folder}/none", **options)


async def tab_rate(sm: StarModel, tabs: int, *, here: bool) -> float:
    """Tabs per second: open a stream (showing the doc, or nothing), read its first message,
    wait for its join to be written and pushed, close it, wait for its leave."""
    looking = [(BenchDoc, "global")] if here else []
    started = time.process_time()
    for n in range(tabs):
        _, body = sm.open_live_stream(f"s{n}", f"t{n}", here=looking)
        await anext(body)
        await sm.presence.idle()
        await body.aclose()
        await sm.presence.idle()
    return tabs / (time.process_time() - started)


async def burst(sm: StarModel, tabs: int) -> tuple[int, float]:
    """Pushes the first tab got while ``tabs`` tabs opened at once, and seconds until all had
    the full list."""
    started = time.perf_counter()
    opened = [sm.open_live_stream(f"b{n}", f"bt{n}", here=[(BenchDoc, "global")]) for n in range(tabs)]
    await asyncio.gather(*(anext(body) for _, body in opened))  # all at once, as after a deploy
    full = f'data-count="{tabs}"'
    async with asyncio.timeout(30):
        while not all(any(full in m for m in tab.pending) for tab, _ in opened):
            await asyncio.sleep(0.005)
    took = time.perf_counter() - started
    pushes = sum("presence-bench_doc-global" in m for m in opened[0][0].pending)
    for _, body in opened:
        await body.aclose()
    await sm.presence.idle()
    return pushes, took


async def crossing_times(a: StarModel, b: StarModel, rounds: int) -> list[float]:
    """Milliseconds from a tab opening on ``b`` to ``a``'s tab holding the longer list."""
    watcher, body = a.open_live_stream("watcher", "w", here=[(BenchDoc, "global")])
    await anext(body)
    times = []
    for n in range(rounds):
        watcher.pending.clear()
        started = time.perf_counter()
        _, other = b.open_live_stream(f"visitor{n}", f"v{n}", here=[(BenchDoc, "global")])
        await anext(other)
        async with asyncio.timeout(5):
            while not any('data-count="2"' in m for m in watcher.pending):
                await asyncio.sleep(0.0005)
        times.append((time.perf_counter() - started) * 1000)
        await other.aclose()
        await b.presence.idle()
        async with asyncio.timeout(5):
            while not any('data-count="1"' in m for m in watcher.pending):
                await asyncio.sleep(0.0005)
    await body.aclose()
    return times


async def beat_ms(presence: PresenceService, viewers: int, instances: int, repeat: int = 5) -> float:
    for n in range(viewers):
        await presence.join("bench_doc", f"k{n % instances}", f"c{n}", Viewer(f"v{n}", f"Viewer {n}"))
    took = []
    for _ in range(repeat):
        started = time.perf_counter()
        await presence.beat_once()
        took.append((time.perf_counter() - started) * 1000)
    await presence.stop()
    return statistics.median(took)


async def main(args: argparse.Namespace) -> None:
    prefix = f"benchpresence{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as folder:
        sm = app(folder)
        async with sm.app.router.lifespan_context(sm.app):
            await tab_rate(sm, 100, here=True)  # warm up
            plain = await tab_rate(sm, args.tabs, here=False)
            shown = await tab_rate(sm, args.tabs, here=True)
            pushes, took = await burst(sm, args.burst)
        print(f"tabs per CPU-s, memory tracker: b (no presence) {plain:7.0f}   p (presence) {shown:7.0f}"
              f"   p/b {shown / plain:.2f}")
        print(f"burst of {args.burst} tabs, memory tracker: {pushes} pushes to the first tab, "
              f"all had the full list after {took * 1000:.0f} ms")

        a, b = (app(folder, redis_url=args.redis, redis_prefix=prefix) for _ in range(2))
        async with a.app.router.lifespan_context(a.app), b.app.router.lifespan_context(b.app):
            plain = await tab_rate(a, args.tabs // 4, here=False)
            shown = await tab_rate(a, args.tabs // 4, here=True)
            print(f"tabs per CPU-s, Redis tracker:  b (no presence) {plain:7.0f}   p (presence) {shown:7.0f}"
                  f"   p/b {shown / plain:.2f}")
            pushes, took = await burst(a, args.burst)
            print(f"burst of {args.burst} tabs, Redis tracker: {pushes} pushes to the first tab, "
                  f"all had the full list after {took * 1000:.0f} ms")
            times = sorted(await crossing_times(a, b, args.crossings))
            p95 = times[int(len(times) * 0.95) - 1]
            print(f"join on one app -> list on the other (Redis): median {statistics.median(times):.2f} ms,"
                  f" p95 {p95:.2f} ms ({len(times)} joins)")

    connection = RedisConnection(args.redis, prefix=prefix)
    try:
        in_redis = await beat_ms(PresenceService(RedisPresenceTracker(connection), InProcessBus()),
                                 args.viewers, args.instances)
        in_memory = await beat_ms(PresenceService(MemoryPresenceTracker(), InProcessBus()),
                                  args.viewers, args.instances)
        print(f"one beat, {args.viewers} viewers over {args.instances} instances: Redis {in_redis:.1f} ms,"
              f" memory {in_memory:.1f} ms (Redis/memory {in_redis / in_memory:.1f})")
    finally:
        keys = [k async for k in connection.client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await connection.client.delete(*keys)
        await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tabs", type=int, default=2000)
    parser.add_argument("--crossings", type=int, default=200)
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    asyncio.run(main(parser.parse_args()))
