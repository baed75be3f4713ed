"""What file uploads cost, measured in this run against baselines of the same run:

1. every request now passes ``UploadScope`` (upload tokens read per request): the time of one
   event call through the app, with and without that middleware (ratio, target <= 1.05);
2. a 20 MB upload in 512 KiB chunks through the app (in process: announce, chunks, recognise,
   digest, attach and commit) against writing the same bytes to a file in the same chunks
   (MB/s of each, and their ratio: what the HTTP path costs over the disk).

    python bench/uploads_cost.py [--calls 3000] [--megabytes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asgi_calls import call_asgi, event_scope

from starmodel import Entity, FileRules, StarModel, StoredFile, event
from starmodel.adapters.driving.web.uploads import UploadScope
from starmodel.testing import AsgiTransport


class BenchAlbum(Entity):
    model_config = {"namespace": "bench_album"}
    count: int = 0
    cover: Annotated[StoredFile | None, FileRules(max_size="64MB")] = None

    @event
    def increment(self) -> None:
        self.count += 1


def app(files: Path, *, with_scope: bool) -> StarModel:
    sm = StarModel(entities=[BenchAlbum], secret_key="bench", files_dir=str(files))
    if not with_scope:
        sm.app.user_middleware = [m for m in sm.app.user_middleware if m.cls is not UploadScope]
    return sm


async def event_calls(apps: list[StarModel], calls: int, rounds: int = 9) -> list[float]:
    """Seconds per event call of each app (median of ``rounds`` rounds, the apps taking turns
    in each round, so that what else runs on the machine weighs on both alike)."""
    scopes = []
    for sm in apps:
        first = await call_asgi(sm.app, event_scope("/bench_album/increment", b"", None), b"{}")
        cookie = next(v for k, v in first.headers if k == b"set-cookie").split(b";")[0]
        scopes.append(event_scope("/bench_album/increment", b"", cookie.decode()))
    seen: list[list[float]] = [[] for _ in apps]
    for _ in range(rounds):
        for index, sm in enumerate(apps):
            start = time.perf_counter()
            for _ in range(calls // rounds):
                await call_asgi(sm.app, dict(scopes[index]), b"{}")
            seen[index].append((time.perf_counter() - start) / (calls // rounds))
    return [statistics.median(times) for times in seen]


async def upload_seconds(sm: StarModel, data: bytes, chunk: int) -> float:
    transport = AsgiTransport(sm.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                 headers={"Datastar-Request": "true"}) as http:
        start = time.perf_counter()
        begun = (await http.post("/_starmodel/uploads", json={
            "target": "bench_album/cover", "name": "big.bin", "size": len(data),
            "type": "application/octet-stream"})).json()
        offset = 0
        while offset < len(data):
            answer = await http.put(f"/_starmodel/uploads/{begun['ticket']}?offset={offset}",
                                    content=data[offset:offset + chunk])
            assert answer.status_code == 200, answer.text
            offset = answer.json()["received"]
        return time.perf_counter() - start


def disk_seconds(folder: Path, data: bytes, chunk: int) -> float:
    start = time.perf_counter()
    with (folder / "baseline.bin").open("wb") as file:
        for offset in range(0, len(data), chunk):
            file.write(data[offset:offset + chunk])
            file.flush()
    return time.perf_counter() - start


async def main(calls: int, megabytes: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with_scope, without = app(folder / "a", with_scope=True), app(folder / "b", with_scope=False)
        async with with_scope.app.router.lifespan_context(with_scope.app), \
                without.app.router.lifespan_context(without.app):
            await event_calls([without, with_scope], 500)  # warm up both
            base, scoped = await event_calls([without, with_scope], calls)
            data = b"\x00" * (megabytes * 1024 * 1024)
            chunk = 512 * 1024
            up = min([await upload_seconds(with_scope, data, chunk) for _ in range(3)])
            disk = min(disk_seconds(folder, data, chunk) for _ in range(3))
    ratio = scoped / base
    print(f"event call: {base * 1e6:.1f} us without UploadScope, {scoped * 1e6:.1f} us with it: "
          f"ratio {ratio:.3f} ({'PASS' if ratio <= 1.05 else 'FAIL'} <= 1.05)")
    print(f"{megabytes} MB upload in {chunk // 1024} KiB chunks: {megabytes / up:.0f} MB/s through the app, "
          f"{megabytes / disk:.0f} MB/s written straight to a file: ratio {disk / up:.3f}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--megabytes", type=int, default=20)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.calls, args.megabytes)))
