"""In-process cost of one event, without a server or a network: where does the time go?

Calls each bench app's ASGI callable directly, the way uvicorn would (same scope shape, ASGI
spec 2.3), one request after another in one event loop, and reports CPU microseconds per
request. (d) is the demo (``demo/app.py``) answering its counter's ``increment``: the whole app around
the same kind of event. With ``--profile`` it also profiles one app (``--app``, default the
StarModel app a) with cProfile, or with pyinstrument when ``--profile pyinstrument`` and it
is installed.

Numbers here leave out HTTP parsing and sockets, so they are steadier than
``event_throughput.py`` on a busy machine and show the framework's own share.

Usage::

    python bench/profile_event.py [--requests 20000] [--profile cprofile|pyinstrument]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import io
import pstats
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_apps  # a sibling file, not a package
from asgi_calls import AsgiApp, AsgiResponse, call_asgi, event_scope

DEMO_EVENT_PATH = "/counter/increment"


def build_demo_app() -> AsgiApp:
    """(d) The demo (``demo/app.py``: every page, the auth plugin, CRUD, admin, jobs), as
    ``starmodel run demo`` serves it, answering its counter's ``increment``. Its SQL tables
    go to a throw-away SQLite file."""
    import os
    import tempfile

    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/demo.db")
    from demo.app import app

    return app  # type: ignore[no-any-return]


FACTORIES = {
    "a": bench_apps.build_starmodel_app,
    "b": bench_apps.build_datastar_app,
    "c": bench_apps.build_plain_app,
    "d": build_demo_app,
}
PATHS = {"d": DEMO_EVENT_PATH}
_path = bench_apps.EVENT_PATH


async def call(app: AsgiApp, cookie: str | None) -> AsgiResponse:
    """One request through ``app``: status, headers and body of its answer."""
    return await call_asgi(app, event_scope(_path, b"", cookie), b"{}")


async def first_cookie(app: AsgiApp) -> str:
    """The session cookie the app sets on a first request (checked to be a real answer)."""
    answer = await call(app, None)
    cookie = answer.header("set-cookie")
    if answer.status != 200 or cookie is None or b"datastar-patch-signals" not in answer.body:
        raise SystemExit(f"unexpected answer {answer.status}: {answer.body[:200]!r}")
    return cookie.split(";", 1)[0]


async def run(app: AsgiApp, cookie: str, requests: int) -> None:
    """``requests`` events in a row with the same session."""
    for _ in range(requests):
        await call(app, cookie)


def use_app(key: str) -> AsgiApp:
    """Build app ``key`` and aim the requests at its event."""
    global _path
    _path = PATHS.get(key, bench_apps.EVENT_PATH)
    return FACTORIES[key]()


def cost_per_request(key: str, requests: int) -> float:
    """CPU microseconds per request of app ``key`` (after a short warm-up)."""
    app = use_app(key)

    async def measure() -> float:
        cookie = await first_cookie(app)
        await run(app, cookie, min(1000, requests))
        start = time.process_time()
        await run(app, cookie, requests)
        return (time.process_time() - start) / requests * 1e6

    return asyncio.run(measure())


def profile_with_cprofile(key: str, requests: int, top: int) -> str:
    """cProfile of app ``key``, sorted by cumulative time."""
    app = use_app(key)

    async def go() -> None:
        cookie = await first_cookie(app)
        await run(app, cookie, 500)
        profiler.enable()
        await run(app, cookie, requests)
        profiler.disable()

    profiler = cProfile.Profile()
    asyncio.run(go())
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def profile_with_pyinstrument(key: str, requests: int) -> str:
    """pyinstrument's call tree of app ``key``."""
    from pyinstrument import Profiler

    app = use_app(key)

    async def go() -> None:
        cookie = await first_cookie(app)
        await run(app, cookie, 500)
        with Profiler(interval=0.001, async_mode="disabled") as profiler:
            await run(app, cookie, requests)
        print(profiler.output_text(unicode=False, color=False, show_all=False))

    asyncio.run(go())
    return ""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per app")
    parser.add_argument("--profile", choices=("none", "cprofile", "pyinstrument"), default="none")
    parser.add_argument("--top", type=int, default=30, help="rows of the cProfile tables")
    parser.add_argument("--app", choices=tuple(FACTORIES), default="a", help="the app to profile")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Print CPU us/request for a, b, c and d, then the requested profile of one of them."""
    args = parse_args(argv)
    costs = {key: cost_per_request(key, args.requests) for key in FACTORIES}
    for key, us in costs.items():
        print(f"({key}) {us:8.1f} us CPU per request  ({1e6 / us:8.0f} requests per CPU-second)")
    for key in ("a", "d"):
        print(f"{key}/b = {costs['b'] / costs[key]:.2f}   {key}/c = {costs['c'] / costs[key]:.2f}"
              "   (throughput ratios, no HTTP/socket cost)")  # fmt: skip
    if args.profile == "cprofile":
        print(profile_with_cprofile(args.app, args.requests, args.top))
    elif args.profile == "pyinstrument":
        if importlib.util.find_spec("pyinstrument") is None:
            print("pyinstrument is not installed: pip install pyinstrument", file=sys.stderr)
            return 2
        profile_with_pyinstrument(args.app, args.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
