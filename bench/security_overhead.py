"""In-process cost of the production security layer on one event: the trusted-proxy and
security-header middlewares (the safe headers; a nonce only for pages) and a ``rate`` on the
event, against the same app without them, measured in the same run.

Calls the apps' ASGI callables directly (as ``profile_event.py`` does), rounds interleaved so
a busy machine slows every app alike, and prints CPU microseconds per event and the ratios;
then the cost of each part alone (the two middlewares around an app that does nothing, and one
rate check), which a shared machine blurs less.

Usage::

    python bench/security_overhead.py [--requests 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_apps  # a sibling file, not a package
from asgi_calls import AsgiApp, call_asgi, event_scope

from starmodel import Entity, StarModel, event
from starmodel.adapters.driven.rates import MemoryCallCounter
from starmodel.adapters.driving.web.proxies import TrustedProxies
from starmodel.adapters.driving.web.rate_limits import EventRateLimiter
from starmodel.adapters.driving.web.security import SecurityHeaders
from starmodel.core.context import CallContext
from starmodel.core.rates import Rate

BenchCounter, SECRET = bench_apps.BenchCounter, bench_apps.SECRET


class LimitedCounter(Entity):
    """``BenchCounter`` with a rate no benchmark reaches."""

    model_config = {"namespace": "bench_counter"}
    count: int = 0

    @event(rate="999999999/hour")
    def increment(self, amount: int = 1) -> None:
        self.count += amount


def without_security(sm: StarModel) -> Any:
    """The app with the two security middlewares taken out (before its first request)."""
    sm.app.user_middleware = [m for m in sm.app.user_middleware
                              if m.cls not in (SecurityHeaders, TrustedProxies)]
    return sm.app


APPS = {
    "bare": lambda: without_security(StarModel(entities=[BenchCounter], secret_key=SECRET)),
    "secure": lambda: StarModel(entities=[BenchCounter], secret_key=SECRET).app,
    "secure+proxy": lambda: StarModel(entities=[BenchCounter], secret_key=SECRET,
                                      trusted_proxies=("127.0.0.1",)).app,
    "secure+rate": lambda: StarModel(entities=[LimitedCounter], secret_key=SECRET).app,
}


async def cost(app: AsgiApp, requests: int) -> float:
    scope = event_scope(bench_apps.EVENT_PATH, b"", None)
    first = await call_asgi(app, scope, b"{}")
    cookie = (first.header("set-cookie") or "").split(";", 1)[0]
    if first.status != 200 or not cookie:
        raise SystemExit(f"unexpected answer {first.status}: {first.body[:200]!r}")
    scope = event_scope(bench_apps.EVENT_PATH, b"", cookie)
    scope["headers"].append((b"x-forwarded-for", b"203.0.113.9"))
    for _ in range(min(1000, requests)):
        await call_asgi(app, dict(scope), b"{}")
    start = time.process_time()
    for _ in range(requests):
        await call_asgi(app, dict(scope), b"{}")
    return (time.process_time() - start) / requests * 1e6


async def part_costs(calls: int) -> dict[str, float]:
    """Microseconds per call of each part alone."""

    async def nothing(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b""})

    async def ignore(message: Any) -> None:
        return None

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "scheme": "http", "client": ("127.0.0.1", 1),
             "headers": [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")]}
    wrapped = {
        "no middleware": nothing,
        "SecurityHeaders": SecurityHeaders(nothing),
        "TrustedProxies (trusted peer)": TrustedProxies(nothing, ["127.0.0.1"]),
    }
    found = {}
    for name, app in wrapped.items():
        start = time.process_time()
        for _ in range(calls):
            await app(dict(scope), receive, ignore)
        found[name] = (time.process_time() - start) / calls * 1e6
    limiter, ctx = EventRateLimiter(MemoryCallCounter()), CallContext(session_id="s" * 24)
    rate = Rate(999_999_999, 3600)
    start = time.process_time()
    for _ in range(calls):
        await limiter.check("bench_counter", "increment", rate, ctx)
    found["one rate check (memory)"] = (time.process_time() - start) / calls * 1e6
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    apps = {name: build() for name, build in APPS.items()}
    found: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.rounds):
        for name, app in apps.items():
            found[name].append(asyncio.run(cost(app, args.requests)))
    base = statistics.median(found["bare"])
    print(f"{'app':<14} {'us/event':>9} {'vs bare':>8}")
    for name, values in found.items():
        median = statistics.median(values)
        print(f"{name:<14} {median:9.1f} {median / base:8.3f}")
    print()
    for name, micros in asyncio.run(part_costs(args.requests * 5)).items():
        print(f"{name:<32} {micros:6.2f} us")


if __name__ == "__main__":
    main()
