"""Where an open live stream's memory goes: a tracemalloc snapshot diff between K and 2K streams.

For each app of ``fanout_apps.py`` (or the ones given with ``--apps``), the script starts the
app under uvicorn (same settings as ``fanout.py``: one worker, httptools, uvloop when
installed) in a process that traces its allocations (``tracemalloc``), opens K streams with
``fanout.py``'s load code (each a browser of its own), has the server take a snapshot, opens K
more, takes another, and prints per stream:

* the RSS growth, and the traced bytes' growth (what Python allocated and still holds);
* the source lines whose allocations grew most (``--top``), with ``--traceback`` the call
  chains that led there;
* the GC-tracked objects that appeared, by type.

Usage::

    python bench/fanout_memory.py [--streams 1000] [--apps a,b] [--top 25] [--traceback 0]

Tracing slows the server several times and costs memory of its own (not counted in the traced
bytes, but in the RSS): read the RSS figures of ``fanout.py``, and the shares here.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import APPS, ClientConfig, open_streams, raise_open_files, server_rss
from harness import HOST, free_port


def serve(factory: str, port: int, out: str, frames: int) -> None:
    """The traced server: uvicorn in this process; SIGUSR1 writes a snapshot to ``out``."""
    import uvicorn

    tracemalloc.start(frames)
    taken = 0

    def snapshot(*_: Any) -> None:
        nonlocal taken
        gc.collect()
        taken += 1
        tracemalloc.take_snapshot().dump(f"{out}.{taken}.snap")
        counts = Counter(type(o).__qualname__ for o in gc.get_objects())
        Path(f"{out}.{taken}.json").write_text(json.dumps(counts))
        Path(f"{out}.{taken}.done").touch()

    signal.signal(signal.SIGUSR1, snapshot)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    uvicorn.run(
        f"fanout_apps:{factory}", factory=True, host=HOST, port=port, http="httptools", loop=loop,
        log_level="warning", access_log=False,
    )  # fmt: skip


async def wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server wrote no {path.name}")
        await asyncio.sleep(0.1)


async def probe(key: str, live_path: str, port: int, pid: int, out: str, streams: int) -> dict[str, Any]:
    """Open ``streams`` streams twice, a snapshot after each batch; the RSS of each point."""
    deadline = time.monotonic() + 60
    while True:  # the traced server starts slowly
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        else:
            writer.close()
            break
    cfg = ClientConfig(key, port, pid, live_path, streams, 1, 0, 100, 120.0)
    rss = []
    kept = []
    for batch in (1, 2):
        kept += await open_streams(cfg, streams, f"b{batch}-", None)
        await asyncio.sleep(1.0)
        rss.append(server_rss(pid))
        os.kill(pid, signal.SIGUSR1)
        await wait_for(Path(f"{out}.{batch}.done"))
    for client in kept:
        client.close()
    return {"rss": rss}


def report(key: str, label: str, out: str, streams: int, rss: list[int], top: int, traceback: int) -> None:
    first = tracemalloc.Snapshot.load(f"{out}.1.snap")
    second = tracemalloc.Snapshot.load(f"{out}.2.snap")
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
    first, second = first.filter_traces(ignore), second.filter_traces(ignore)
    traced = sum(s.size for s in second.statistics("filename")) - sum(
        s.size for s in first.statistics("filename")
    )
    print(f"\n({key}) {label}: {streams} -> {2 * streams} streams")
    print(f"RSS per stream {(rss[1] - rss[0]) / streams:,.0f} B; traced Python memory per stream "
          f"{traced / streams:,.0f} B")  # fmt: skip
    print(f"{'B/stream':>9} {'blocks/stream':>13}  where")
    for stat in second.compare_to(first, "lineno")[:top]:
        frame = stat.traceback[0]
        where = f"{_short(frame.filename)}:{frame.lineno}"
        print(f"{stat.size_diff / streams:>9,.0f} {stat.count_diff / streams:>13.2f}  {where}")
    owners: Counter[str] = Counter()
    for stat in second.compare_to(first, "traceback"):
        owners[_owner(stat.traceback)] += stat.size_diff
    print("by the code that allocated it (the innermost frame of a known package):")
    print("  " + ", ".join(f"{name} {size / streams:,.0f} B" for name, size in owners.most_common()))
    if traceback:
        print("\ncall chains of the largest:")
        for stat in second.compare_to(first, "traceback")[:traceback]:
            print(f"-- {stat.size_diff / streams:,.0f} B/stream")
            for line in stat.traceback.format(limit=12, most_recent_first=True):
                print("   " + line.replace(str(Path(sys.prefix)), "<py>"))
    before = Counter(json.loads(Path(f"{out}.1.json").read_text()))
    after = Counter(json.loads(Path(f"{out}.2.json").read_text()))
    grown = after - before
    print(f"GC-tracked objects per stream: {grown.total() / streams:.1f}")
    print("  " + ", ".join(f"{name} {count / streams:.2f}" for name, count in grown.most_common(30)))


_OWNERS = (
    ("starmodel/adapters/driving/live/", "starmodel live"),
    ("starmodel/", "starmodel other"),
    ("starlette/", "starlette"),
    ("anyio/", "anyio"),
    ("fasthtml/", "fasthtml"),
    ("datastar_py/", "datastar_py"),
    ("bench/fanout_apps", "bench app"),
    ("uvicorn/", "uvicorn"),
)


def _owner(traceback: tracemalloc.Traceback) -> str:
    """Who allocated: the innermost frame that belongs to a known package (an asyncio object
    counts for the code that made it); else the event loop's own (uvloop's transports)."""
    for frame in reversed(traceback):  # tracemalloc lists the oldest frame first
        for marker, name in _OWNERS:
            if marker in frame.filename:
                return name
    return "event loop / other"


def _short(filename: str) -> str:
    for marker in ("site-packages/", "starmodel/", "bench/"):
        if marker in filename:
            return filename[filename.index(marker) :]
    return filename


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="K: streams per batch")
    parser.add_argument("--apps", default="a,b", help="which apps of fanout.py (a, b)")
    parser.add_argument("--top", type=int, default=25, help="source lines listed")
    parser.add_argument("--traceback", type=int, default=0, help="call chains listed")
    parser.add_argument("--frames", type=int, default=16, help="frames kept per allocation")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)  # internal: factory port out
    ns = parser.parse_args()
    if ns.serve:
        factory, port, out = ns.serve
        serve(factory, int(port), out, ns.frames)
        return 0
    raise_open_files(2 * ns.streams + 64)
    wanted = set(ns.apps.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        for app in APPS:
            if app.spec.key not in wanted:
                continue
            port = free_port()
            out = os.path.join(tmp, app.spec.key)
            server = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--frames",
                    str(ns.frames),
                    "--serve",
                    app.spec.factory,
                    str(port),
                    out,
                ],
                cwd=Path(__file__).parent,
            )
            try:
                found = asyncio.run(probe(app.spec.key, app.live_path, port, server.pid, out, ns.streams))
            finally:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(10)
                except subprocess.TimeoutExpired:
                    server.kill()
            report(app.spec.key, app.spec.label, out, ns.streams, found["rss"], ns.top, ns.traceback)
    return 0


if __name__ == "__main__":
    sys.exit(main())
