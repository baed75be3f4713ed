"""Plain events on a global entity while a long background job runs on it, against the same
events with no job, in the same run.

The app (in process, through the testing kit's ASGI client: the full event path, no network)
serves ``Board``, a global entity: ``click`` adds one to ``clicks``; ``job`` is a background
event that, every ``--step`` seconds for as long as it runs, adds to ``clicks`` too and yields
(so its entity is taken, changed, committed and published at every step). ``--clients``
browser sessions call ``click`` back to back for ``--duration`` seconds, first with no job
(idle), then while the job runs (busy), in rounds idle, busy, idle, busy...; each phase's
figure is the median over the rounds. Printed: events/s, p50 and p99 of the answer times, and
the busy/idle ratios. Goal: busy p99 within 2x of idle p99. After each busy phase, every click
and every job step must be in ``clicks``, else the run is invalid (exit status 1).

Usage::

    python bench/background_contention.py [--duration 3] [--clients 8] [--rounds 3] [--step 0.05]
    python bench/background_contention.py --store redis   # a Redis entity (REDIS_URL, own prefix)

It is a benchmark, not a test: a missed goal prints FAIL but the exit status stays 0.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from starmodel import Entity, StarModel, StateStore, event
from starmodel.testing import EventClient

GOAL = 2.0


def board_class(store: StateStore) -> type[Entity]:
    class Board(Entity):
        model_config = {"scope": "global", "namespace": "bench_board", "store": store}
        clicks: int = 0
        steps: int = 0
        running: bool = False

        @event
        def click(self) -> None:
            self.clicks += 1

        @event
        def stop(self) -> None:
            self.running = False

        @event(background=True)
        async def job(self, step: float = 0.05):
            self.running = True
            while self.running:
                await asyncio.sleep(step)  # the entity is free while the job waits
                self.clicks += 1000
                self.steps += 1
                yield None

    return Board


@dataclass
class Phase:
    name: str
    events: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(client: EventClient, board: type[Entity], clients: int, duration: float, name: str) -> Phase:
    sessions = [client.session() for _ in range(clients)]
    latencies: list[float] = []
    end = time.perf_counter() + duration

    async def user(session: Any) -> None:
        while time.perf_counter() < end:
            begun = time.perf_counter()
            answer = await session.call(board.click)
            latencies.append(time.perf_counter() - begun)
            if answer.status != 200:
                raise SystemExit(f"click answered {answer.status}: {answer.error}")

    started = time.perf_counter()
    await asyncio.gather(*(user(session) for session in sessions))
    return Phase(name, len(latencies), time.perf_counter() - started, latencies)


async def run(args: argparse.Namespace) -> int:
    store = StateStore.SERVER_REDIS if args.store == "redis" else StateStore.SERVER_MEMORY
    board = board_class(store)
    options: dict[str, Any] = {"secret_key": "bench", "migrations_dir": "/nonexistent-bench-migrations"}
    if args.store == "redis":
        options.update(redis_url=args.redis_url, redis_prefix=f"smbench{secrets.token_hex(4)}")
    sm = StarModel(entities=[board], **options)
    phases: dict[str, list[Phase]] = {"idle": [], "busy": []}
    async with EventClient(sm, timeout=30) as client:
        await load(client, board, args.clients, 0.5, "warm-up")
        for _ in range(args.rounds):
            phases["idle"].append(await load(client, board, args.clients, args.duration, "idle"))
            before = await client.state(board)
            assert (await client.call(board.job, step=args.step)).ok
            busy = await load(client, board, args.clients, args.duration, "busy")
            assert (await client.call(board.stop)).ok
            await client.wait_for_runs(timeout=10)
            phases["busy"].append(busy)
            after = await client.state(board)
            steps = after.steps - before.steps
            expected = before.clicks + busy.events + 1000 * steps  # type: ignore[attr-defined]
            if after.clicks != expected or steps < 1:  # type: ignore[attr-defined]
                print(f"INVALID: clicks {after.clicks} != {expected} (steps {steps})")  # type: ignore[attr-defined]
                return 1
    summary = {}
    print(f"store={args.store} clients={args.clients} duration={args.duration}s rounds={args.rounds} "
          f"job step={args.step}s")
    print(f"{'phase':<6} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, runs in phases.items():
        rate = statistics.median(p.rate for p in runs)
        p50 = statistics.median(p.percentile(0.50) for p in runs) * 1000
        p99 = statistics.median(p.percentile(0.99) for p in runs) * 1000
        summary[name] = (rate, p50, p99)
        print(f"{name:<6} {rate:>10.0f} {p50:>8.2f} {p99:>8.2f}")
    rate_ratio = summary["busy"][0] / summary["idle"][0]
    p99_ratio = summary["busy"][2] / summary["idle"][2]
    verdict = "PASS" if p99_ratio <= GOAL else "FAIL"
    print(f"busy/idle events/s: {rate_ratio:.2f}x   busy/idle p99: {p99_ratio:.2f}x "
          f"(goal <= {GOAL:.0f}x) {verdict}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of load per phase")
    parser.add_argument("--clients", type=int, default=8, help="browser sessions clicking at once")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--step", type=float, default=0.05, help="seconds between the job's steps")
    parser.add_argument("--store", choices=("memory", "redis"), default="memory")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.clients < 1 or args.rounds < 1 or args.step <= 0:
        parser.error("--duration, --clients, --rounds and --step must be positive")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
