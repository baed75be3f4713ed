"""Delivery latency of one change to a tab's live stream: in one process vs across processes.

Three set-ups of the same app (``cross_apps.py``: a global counter with an ``increment`` event),
each run as real uvicorn processes on 127.0.0.1:

- ``local``: one process, in-process bus, counter in memory; the tab's live stream and the
  event go to the same process (the baseline).
- ``redis-same``: one process with ``REDIS_URL``: the change makes a round trip through Redis
  pub/sub before it reaches the stream held by the very process that made it.
- ``redis-cross``: two processes sharing Redis; the event goes to A, the live stream is on B.

For each, ``--changes`` sequential changes: the clock starts when the POST is sent and stops
when the live stream delivers the new value. Prints p50/p99 per set-up and the ratios against
``local``. The latency includes the event itself (request, unit of work, commit), which is
what a user sees between a click elsewhere and the change on their screen.

    python bench/cross_process.py [--changes 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import AppSpec, BenchError, Options, free_port, start_server, stop_server

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SPEC = AppSpec("x", "cross-process bench app", "build_app")
COUNT = re.compile(r'"bench_shared":\{"count":(\d+)\}')
RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(post_port: int, stream_port: int, changes: int) -> list[float]:
    """Latencies (ms) of ``changes`` increments POSTed to one server, read on the other's stream."""
    headers = {"Datastar-Request": "true"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stream_port}", timeout=10) as tab, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{post_port}", timeout=10) as clicker:
        await clicker.get("/")
        origin = {"Origin": f"http://127.0.0.1:{post_port}", **headers}
        async with tab.stream("GET", "/_starmodel/live", headers=headers) as live:
            chunks = live.aiter_text()
            await anext(chunks)  # the initial state
            latencies: list[float] = []
            buffer = ""
            for n in range(changes + 20):  # the first 20 warm up
                started = time.perf_counter()
                answer = await clicker.post("/bench_shared/increment", headers=origin, json={})
                if answer.status_code != 200:
                    raise BenchError(f"event answered {answer.status_code}: {answer.text[:200]}")
                value = int(COUNT.findall(answer.text)[-1])
                while True:
                    seen = [int(v) for v in COUNT.findall(buffer)]
                    if value in seen:
                        break
                    buffer += await asyncio.wait_for(anext(chunks), 10)
                if n >= 20:
                    latencies.append((time.perf_counter() - started) * 1000)
                buffer = ""
            return latencies


def run_setup(name: str, changes: int, opts: Options) -> dict[str, Any]:
    prefix = f"benchx{secrets.token_hex(3)}"
    env = {**os.environ, "SECRET_KEY": "bench", "STARMODEL_ASSETS": "cdn", "STARMODEL_REDIS_PREFIX": prefix}
    env.pop("REDIS_URL", None)
    if name != "local":
        env["REDIS_URL"] = REDIS_URL
    count = 2 if name == "redis-cross" else 1
    ports = [free_port() for _ in range(count)]
    procs = []
    with tempfile.TemporaryFile() as log:
        try:
            for port in ports:
                procs.append(start_server("cross_apps", SPEC, port, opts, log, env))
            time.sleep(0.5)  # subscriptions settle
            latencies = asyncio.run(measure(ports[0], ports[-1], changes))
        finally:
            for proc in procs:
                stop_server(proc)
            if name != "local":
                _drop(prefix)
    return {
        "setup": name, "changes": len(latencies),
        "p50_ms": statistics.median(latencies), "p99_ms": percentile(latencies, 0.99),
        "mean_ms": statistics.fmean(latencies),
    }


def _drop(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=300, help="measured changes per set-up")
    args = parser.parse_args()
    opts = Options(duration=0, connections=1, threads=1, warmup=0, rounds=1,
                   http="httptools", loop="uvloop", pin=False)
    try:
        rows = [run_setup(name, args.changes, opts) for name in ("local", "redis-same", "redis-cross")]
    except BenchError as exc:
        print(f"invalid run: {exc}", file=sys.stderr)
        return 1
    base = rows[0]
    print(f"{'set-up':<12} {'p50 ms':>8} {'p99 ms':>8} {'p50/local':>10} {'p99/local':>10}")
    for row in rows:
        print(f"{row['setup']:<12} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
              f"{row['p50_ms'] / base['p50_ms']:>10.2f} {row['p99_ms'] / base['p99_ms']:>10.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"cross_process-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"changes": args.changes, "rows": rows}, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
