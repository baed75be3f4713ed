"""Live fan-out: one change to a global entity delivered to N open live streams.

One run measures, for each N of ``--streams`` (default 1,000, 5,000 and 10,000) and under the same
uvicorn settings, two apps of ``fanout_apps.py``:

* (a) StarModel: ``N`` tabs hold ``GET /_starmodel/live`` open; a writer tab POSTs
  ``/bench_global/increment`` on a ``scope="global"`` entity; the change goes through the bus and
  the live hub to every stream as a ``datastar-patch-signals`` event;
* (b) a hand-written FastHTML broadcaster: one ``asyncio.Queue`` per ``GET /live``, filled by the
  same POST, read by datastar-py's ``DatastarResponse`` over an async generator.

Each (app, N) gets a fresh uvicorn process (one worker; pinned to CPU 0 on a two-core machine)
and a separate load process (pinned to CPU 1) that opens the N streams with plain asyncio
sockets (one ``asyncio.Protocol`` each, HTTP/1.1 chunked SSE read by hand), every one a browser
of its own: its own signed session cookie and tab id. The load process:

1. warms the server up (a few streams, two changes, streams closed again);
2. reads the server's RSS, opens the N streams and waits for each one's first message (the
   current value), reads the RSS again: (after - before) / N is the memory per stream;
3. runs ``--rounds`` changes: note the time, POST the change, note when each stream receives the
   event carrying the new value; p50/p99 of the delivery latency are over every stream and round.

Every stream must receive every change (and stay open), else the run is invalid (exit 1).

Usage::

    python bench/fanout.py [--streams 1000,5000,10000] [--rounds 5]

It is a benchmark, not a test: missed targets print FAIL but the exit status stays 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from base64 import b64encode
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

# siblings, not a package: servers, pinning and the JSON record are shared with the other benchmarks
import harness
from fanout_apps import (
    BROADCAST_LIVE_PATH,
    COOKIE,
    EVENT_PATH,
    SECRET,
    SESSION_KEY,
    STARMODEL_LIVE_PATH,
)
from harness import (
    BENCH_DIR,
    EVENT_HEADERS,
    EVENT_NAME,
    HOST,
    LOAD_CPU,
    AppSpec,
    BenchError,
    Options,
    cpu_seconds,
    measure_app,
    pin_to,
    pinnable,
    ratio_of,
    start_server,
    versions,
    write_json,
)

harness.STARTUP_TIMEOUT = max(harness.STARTUP_TIMEOUT, 60.0)  # a busy machine starts servers slowly
RESULTS_FILE = BENCH_DIR / "results" / "fanout.json"
APPS_MODULE = "fanout_apps"
_COUNT = re.compile(rb'"count"\s*:\s*(\d+)')
_EVENT_LINE = f"event: {EVENT_NAME}".encode()
P99_TARGET_MS = 300.0  # StarModel's p99 delivery latency at each of P99_TARGET_STREAMS streams
P99_TARGET_STREAMS = (5000, 10000)
MEMORY_TARGET = 1.25  # StarModel's bytes per stream / the hand-written broadcaster's
BYTES_TARGET = 20_000  # StarModel's server memory per open, idle stream, at every N
BUSY_WARNING = 0.8  # a round whose server got less of a core than this is flagged...
BUSY_MIN_MS = 100.0  # ...if it lasted long enough for /proc's 10 ms CPU ticks to tell
CLIENT_TIMEOUT = 900.0  # seconds one load process may take, whatever N


@dataclass(frozen=True)
class FanoutApp:
    """One contender: the server factory (``spec``) and the path of its live stream."""

    spec: AppSpec
    live_path: str


APPS: tuple[FanoutApp, ...] = (
    FanoutApp(AppSpec("a", "StarModel live stream", "build_starmodel_app"), STARMODEL_LIVE_PATH),
    FanoutApp(AppSpec("b", "datastar-py queue broadcaster", "build_broadcast_app"), BROADCAST_LIVE_PATH),
)


@dataclass(frozen=True)
class FanoutOptions:
    """Settings shared by every app and N of one run."""

    streams: tuple[int, ...]
    rounds: int
    warmup_streams: int
    connect_concurrency: int
    round_timeout: float
    http: str
    loop: str
    pin: bool

    def server_options(self) -> Options:
        """What ``harness.start_server`` needs; it reads only ``http``, ``loop`` and ``pin``
        (the wrk settings of ``Options`` do not apply here)."""
        return Options(0, 0, 0, 0, self.rounds, self.http, self.loop, self.pin)


@dataclass(frozen=True)
class ClientConfig:
    """What the load process is told (as JSON on its command line)."""

    key: str
    port: int
    server_pid: int
    live_path: str
    streams: int
    rounds: int
    warmup_streams: int
    connect_concurrency: int
    round_timeout: float


@dataclass
class RoundStats:
    """One change: its value, the writer's own answer time, the delivery latencies, and the
    server's CPU time from the POST to the last delivery (``server_busy``: its share of that
    wall time; well under 1 means the server waited for a core, e.g. on a busy machine;
    ``client_busy``: the same share for the load process)."""

    value: int
    post_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_ms: float | None
    server_busy: float | None
    client_busy: float


@dataclass
class Measurement:
    """What the load process measured for one app and one N."""

    key: str
    streams: int
    rounds: list[RoundStats]
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    latency_mean_ms: float
    samples: int
    rss_before: int
    rss_after: int
    connect_s: float
    server_cpu_connect_s: float | None
    server_cpu_rounds_s: float | None
    client_cpu_rounds_s: float
    client_loop: str

    @property
    def bytes_per_stream(self) -> float:
        return (self.rss_after - self.rss_before) / self.streams

    @property
    def server_cpu_ms_per_change(self) -> float | None:
        if self.server_cpu_rounds_s is None:
            return None
        return self.server_cpu_rounds_s * 1000 / len(self.rounds)

    def summary(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "bytes_per_stream": round(self.bytes_per_stream),
            "server_cpu_ms_per_change": self.server_cpu_ms_per_change,
        }


# --- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> FanoutOptions | ClientConfig:
    """Read the command line: the benchmark's options, or (``--client``) a load process's job."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--streams", default="1000,5000,10000", help="comma-separated numbers of open streams (N)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="changes measured per app and N")
    parser.add_argument(
        "--warmup-streams", type=int, default=200, help="streams opened and closed before measuring"
    )
    parser.add_argument("--connect-concurrency", type=int, default=250, help="streams being opened at once")
    parser.add_argument(
        "--round-timeout", type=float, default=60.0, help="seconds a change may take to reach every stream"
    )
    parser.add_argument("--http", choices=("httptools", "h11"), default="httptools", help="uvicorn --http")
    parser.add_argument(
        "--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="uvicorn --loop"
    )
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin the server and the load process"
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: run one load process
    ns = parser.parse_args(argv)
    if ns.client:
        return ClientConfig(**json.loads(ns.client))
    try:
        streams = tuple(int(part) for part in ns.streams.split(",") if part.strip())
    except ValueError:
        parser.error("--streams takes numbers separated by commas, e.g. 1000,5000")
    if not streams or min(streams) < 1:
        parser.error("--streams needs at least one number >= 1")
    if ns.rounds < 1 or ns.warmup_streams < 0 or ns.connect_concurrency < 1 or ns.round_timeout <= 0:
        parser.error("--rounds, --connect-concurrency >= 1; --warmup-streams >= 0; --round-timeout > 0")
    return FanoutOptions(
        streams, ns.rounds, ns.warmup_streams, ns.connect_concurrency, ns.round_timeout,
        ns.http, ns.loop, ns.pin,
    )  # fmt: skip


def raise_open_files(needed: int) -> int:
    """Raise this process's open-file limit (children inherit it): the soft limit to the hard
    one, and the hard one too when it is short and we may (as root); refuse a run that would
    still run out of descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        with contextlib.suppress(ValueError, OSError):  # not allowed: the check below says so
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        soft = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft < needed:
        raise BenchError(
            f"{needed} open files are needed but the limit is {soft} (hard limit {hard}); "
            "raise it (ulimit -Hn) or pass fewer --streams"
        )
    return soft


# --- the load process ----------------------------------------------------------------------


def session_cookie(session_id: str) -> str:
    """A ``starmodel_session`` cookie for ``session_id``, signed like the server signs it
    (Starlette's format: base64 JSON, itsdangerous timestamp signature), so every simulated
    browser has a session of its own without a request to create it."""
    import itsdangerous  # only the load process needs it

    payload = b64encode(json.dumps({SESSION_KEY: session_id}).encode())
    signed = itsdangerous.TimestampSigner(SECRET).sign(payload).decode("latin-1")
    return f"{COOKIE}={signed}"


def live_request(path: str, cookie: str, tab: str) -> bytes:
    """The GET a Datastar page sends to open its live stream (``@get`` with ``datastar={}``)."""
    return (
        f"GET {path}?datastar=%7B%7D HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Accept: text/event-stream\r\nDatastar-Request: true\r\nX-StarModel-Tab: {tab}\r\n"
        f"Cookie: {cookie}\r\n\r\n"
    ).encode()


class Deliveries:
    """Counts, per counter value, how many streams have received it; wakes whoever waits for a
    value once every stream has it."""

    def __init__(self, streams: int) -> None:
        self.streams = streams
        self.counts: dict[int, int] = {}
        self.complete: dict[int, asyncio.Event] = {}

    def expect(self, value: int) -> asyncio.Event:
        return self.complete.setdefault(value, asyncio.Event())

    def got(self, value: int) -> None:
        count = self.counts[value] = self.counts.get(value, 0) + 1
        if count == self.streams:
            self.expect(value).set()


class LiveClient(asyncio.Protocol):
    """One open live stream: sends the GET, then decodes the chunked body and its SSE events,
    keeping the arrival time of every counter value it is sent."""

    def __init__(self, request: bytes, deliveries: Deliveries | None) -> None:
        self.request = request
        self.deliveries = deliveries
        self.transport: asyncio.Transport | None = None
        self.raw = bytearray()  # bytes not decoded yet (head, then chunk framing)
        self.sse = bytearray()  # decoded body not yet split into events
        self.head_done = False
        self.status = 0
        self.set_cookie = False
        self.ended: str | None = None  # why the stream stopped, if it did
        self.received: dict[int, float] = {}  # counter value -> perf_counter() at arrival
        self.first: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()  # before any parsing: the parsing is ours, not the server's
        self.raw += data
        if not self.head_done and not self._read_head():
            return
        self._read_chunks()
        while (end := self.sse.find(b"\n\n")) >= 0:
            block = bytes(self.sse[:end])
            del self.sse[: end + 2]
            if _EVENT_LINE in block and (match := _COUNT.search(block)):
                self._value(int(match.group(1)), now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = self.ended or f"connection lost ({exc or 'closed by the server'})"
        if not self.first.done():
            self.first.set_exception(BenchError(f"stream closed before its first message: {self.ended}"))

    def close(self) -> None:
        self.ended = "closed by the client"
        if self.transport is not None:
            self.transport.close()

    def _read_head(self) -> bool:
        end = self.raw.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.raw[:end]).decode("latin-1").lower()
        del self.raw[: end + 4]
        self.head_done = True
        self.status = int(head.split(" ", 2)[1])
        self.set_cookie = "\r\nset-cookie:" in head
        if self.status != 200 or "transfer-encoding: chunked" not in head:
            self._fail(f"answered {head.splitlines()[0]!r}, expected a chunked 200 stream")
            return False
        return True

    def _read_chunks(self) -> None:
        while (eol := self.raw.find(b"\r\n")) >= 0:
            size = int(bytes(self.raw[:eol]).split(b";", 1)[0], 16)
            if size == 0:
                self._fail("the server ended the stream")
                return
            if len(self.raw) < eol + 2 + size + 2:
                return
            self.sse += self.raw[eol + 2 : eol + 2 + size]
            del self.raw[: eol + 2 + size + 2]

    def _value(self, value: int, now: float) -> None:
        if value in self.received:
            return
        self.received[value] = now
        if not self.first.done():
            self.first.set_result(value)
        elif self.deliveries is not None:
            self.deliveries.got(value)

    def _fail(self, reason: str) -> None:
        self.ended = reason
        if not self.first.done():
            self.first.set_exception(BenchError(reason))
        if self.transport is not None:
            self.transport.close()


async def open_streams(
    cfg: ClientConfig, count: int, prefix: str, deliveries: Deliveries | None
) -> list[LiveClient]:
    """Open ``count`` streams (``connect_concurrency`` at a time), each a browser of its own, and
    wait until each has received its first message."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(cfg.connect_concurrency)

    async def one(index: int) -> LiveClient:
        name = f"{prefix}{index}"
        client = LiveClient(live_request(cfg.live_path, session_cookie(name), name), deliveries)
        async with gate:
            await loop.create_connection(lambda: client, HOST, cfg.port)
            try:
                await asyncio.wait_for(client.first, cfg.round_timeout)
            except TimeoutError:
                raise BenchError(
                    f"({cfg.key}) stream {name} got no first message in {cfg.round_timeout}s"
                ) from None
        return client

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def post_change(port: int, cookie: str) -> tuple[float, float, bytes]:
    """The writer tab's click: POST the event (its own session and tab), read the whole answer.
    Returns the time just before the request was sent, when the answer ended, and the answer."""
    reader, writer = await asyncio.open_connection(HOST, port)
    request = (
        f"POST {EVENT_PATH} HTTP/1.1\r\nHost: {HOST}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in EVENT_HEADERS.items())
        + f"X-StarModel-Tab: writer\r\nCookie: {cookie}\r\nContent-Length: 2\r\n"
        "Connection: close\r\n\r\n{}"
    ).encode()
    sent = time.perf_counter()
    writer.write(request)
    answer = await reader.read()
    done = time.perf_counter()
    writer.close()
    if not answer.startswith(b"HTTP/1.1 200") or _EVENT_LINE not in answer:
        raise BenchError(f"the writer's POST was answered {answer[:300]!r}")
    return sent, done, answer


def server_rss(pid: int) -> int:
    """The server's resident memory in bytes (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for process {pid}")


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (a sorted copy is taken)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def check_streams(key: str, clients: Sequence[LiveClient], values: Sequence[int]) -> None:
    """Every stream still open, with every value received; a StarModel stream with a session
    cookie of its own gets no new one (the signed cookie was accepted)."""
    closed = [c.ended for c in clients if c.ended]
    if closed:
        raise BenchError(f"({key}) {len(closed)} of {len(clients)} streams ended: {closed[0]}")
    for value in values:
        missing = sum(value not in c.received for c in clients)
        if missing:
            raise BenchError(f"({key}) {missing} of {len(clients)} streams never received count={value}")
    reissued = sum(c.set_cookie for c in clients)
    if reissued:
        raise BenchError(
            f"({key}) {reissued} streams were given a new session cookie: the signed cookies of "
            "the load process were refused, so the streams did not have sessions of their own"
        )


def _log(cfg: ClientConfig, text: str) -> None:
    print(f"  ({cfg.key}, N={cfg.streams}) {text}", file=sys.stderr, flush=True)


async def warm_up(cfg: ClientConfig, writer_cookie: str) -> None:
    """Open and close a few streams and deliver two changes to them, so that what the server
    allocates once (imports, caches, the first connections) is in the RSS before streams."""
    if cfg.warmup_streams == 0:
        return
    deliveries = Deliveries(cfg.warmup_streams)
    clients = await open_streams(cfg, cfg.warmup_streams, "warm", deliveries)
    for _ in range(2):
        _, _, answer = await post_change(cfg.port, writer_cookie)
        value = int(_COUNT.findall(answer)[-1])
        await asyncio.wait_for(deliveries.expect(value).wait(), cfg.round_timeout)
    for client in clients:
        client.close()
    await asyncio.sleep(1.0)  # let the server notice the disconnects and free the streams


async def run_client(cfg: ClientConfig) -> Measurement:
    """Warm up, open the N streams (RSS before and after), then measure ``rounds`` changes."""
    writer_cookie = session_cookie("writer")
    await warm_up(cfg, writer_cookie)
    rss_before = server_rss(cfg.server_pid)
    deliveries = Deliveries(cfg.streams)
    cpu_start = cpu_seconds(cfg.server_pid)
    started = time.perf_counter()
    clients = await open_streams(cfg, cfg.streams, "tab", deliveries)
    connect_s = time.perf_counter() - started
    cpu_connected = cpu_seconds(cfg.server_pid)
    initial = {c.first.result() for c in clients}
    if len(initial) != 1:
        raise BenchError(f"({cfg.key}) the streams began with different values: {sorted(initial)}")
    base = initial.pop()
    await asyncio.sleep(1.0)  # idle: the connect burst's garbage is gone, the streams wait
    rss_after = server_rss(cfg.server_pid)
    _log(cfg, f"{cfg.streams} streams open in {connect_s:.1f}s; "
              f"RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB")  # fmt: skip

    rounds: list[RoundStats] = []
    latencies: list[float] = []
    cpu_rounds = cpu_seconds(cfg.server_pid)
    client_cpu = time.process_time()
    for n in range(1, cfg.rounds + 1):
        value = base + n
        done = deliveries.expect(value)
        cpu_before, own_before = cpu_seconds(cfg.server_pid), time.process_time()
        sent, answered, _ = await post_change(cfg.port, writer_cookie)
        try:
            await asyncio.wait_for(done.wait(), cfg.round_timeout)
        except TimeoutError:
            got = deliveries.counts.get(value, 0)
            raise BenchError(
                f"({cfg.key}) round {n}: {got} of {cfg.streams} streams received count={value} "
                f"within {cfg.round_timeout}s"
            ) from None
        cpu_ms = delta(cpu_before, cpu_seconds(cfg.server_pid))
        own_ms = (time.process_time() - own_before) * 1000
        ms = [(c.received[value] - sent) * 1000 for c in clients]
        latencies += ms
        cpu_ms = None if cpu_ms is None else round(cpu_ms * 1000, 1)
        busy = None if cpu_ms is None else round(cpu_ms / max(ms), 2)
        rounds.append(RoundStats(
            value, round((answered - sent) * 1000, 2), round(percentile(ms, 50), 2),
            round(percentile(ms, 99), 2), round(max(ms), 2), cpu_ms, busy, round(own_ms / max(ms), 2),
        ))  # fmt: skip
        _log(cfg, f"round {n}: p50 {rounds[-1].p50_ms:.1f} ms, p99 {rounds[-1].p99_ms:.1f} ms")
        await asyncio.sleep(0.5)  # the next change starts on a quiet server
    client_cpu = time.process_time() - client_cpu
    cpu_end = cpu_seconds(cfg.server_pid)
    check_streams(cfg.key, clients, [base + n for n in range(1, cfg.rounds + 1)])
    for client in clients:
        client.close()
    return Measurement(
        key=cfg.key,
        streams=cfg.streams,
        rounds=rounds,
        latency_p50_ms=round(percentile(latencies, 50), 2),
        latency_p99_ms=round(percentile(latencies, 99), 2),
        latency_max_ms=round(max(latencies), 2),
        latency_mean_ms=round(statistics.fmean(latencies), 2),
        samples=len(latencies),
        rss_before=rss_before,
        rss_after=rss_after,
        connect_s=round(connect_s, 3),
        server_cpu_connect_s=delta(cpu_start, cpu_connected),
        server_cpu_rounds_s=delta(cpu_rounds, cpu_end),
        client_cpu_rounds_s=round(client_cpu, 3),
        client_loop="asyncio",
    )


def delta(before: float | None, after: float | None) -> float | None:
    """``after - before`` of two CPU-time readings, ``None`` if either is missing."""
    return None if before is None or after is None else round(after - before, 3)


def client_main(cfg: ClientConfig) -> int:
    """The load process: measure one running app and print the result as one JSON line."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    loop_name = "asyncio"
    try:
        import uvloop

        loop_factory, loop_name = uvloop.new_event_loop, "uvloop"
    except ImportError:
        pass
    try:
        raise_open_files(cfg.streams + cfg.warmup_streams + 64)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(run_client(cfg))
    except BenchError as exc:
        print(f"BenchError: {exc}", file=sys.stderr)
        return 1
    result.client_loop = loop_name
    print(json.dumps({**asdict(result), "rounds": [asdict(r) for r in result.rounds]}))
    return 0


def parse_measurement(line: str) -> Measurement:
    raw = json.loads(line)
    raw["rounds"] = [RoundStats(**r) for r in raw["rounds"]]
    return Measurement(**raw)


# --- the driver ----------------------------------------------------------------------------


def _start(spec: AppSpec, opts: FanoutOptions, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    return start_server(APPS_MODULE, spec, port, opts.server_options(), log)


def _load(app: FanoutApp, streams: int, opts: FanoutOptions, pid: int, port: int) -> Measurement:
    """Run one load process (on the other core) against the running server."""
    cfg = ClientConfig(
        app.spec.key, port, pid, app.live_path, streams, opts.rounds, min(opts.warmup_streams, streams),
        opts.connect_concurrency, opts.round_timeout,
    )  # fmt: skip
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--client", json.dumps(asdict(cfg))],
            stdout=subprocess.PIPE,
            stderr=None,  # progress lines go straight to the terminal
            text=True,
            timeout=CLIENT_TIMEOUT,
            check=False,
            preexec_fn=pin_to(LOAD_CPU if opts.pin else None),  # we are single-threaded
        )
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"({app.spec.key}, N={streams}) the load process ran over {CLIENT_TIMEOUT}s"
        ) from None
    if proc.returncode != 0:
        raise BenchError(f"({app.spec.key}, N={streams}) the load process failed (status {proc.returncode})")
    return parse_measurement(proc.stdout.strip().splitlines()[-1])


def measure(app: FanoutApp, streams: int, opts: FanoutOptions) -> Measurement:
    """Start the app alone, measure it with N streams, stop it."""
    return measure_app(app.spec, partial(_start, app.spec, opts), partial(_load, app, streams, opts))  # type: ignore[type-var]  # RoundT: a wrk Round; any result works


@dataclass
class Comparison:
    """Both apps at one N, their ratios a/b and the targets."""

    streams: int
    results: dict[str, Measurement]
    ratios: dict[str, float | None] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)


def compare(streams: int, results: dict[str, Measurement]) -> Comparison:
    """Ratios a/b (latency and memory) and the targets that apply at this N."""
    a, b = results["a"], results["b"]
    found = Comparison(streams, results)
    found.ratios = {
        "latency_p50": ratio_of(a.latency_p50_ms, b.latency_p50_ms),
        "latency_p99": ratio_of(a.latency_p99_ms, b.latency_p99_ms),
        "bytes_per_stream": ratio_of(a.bytes_per_stream, b.bytes_per_stream),
        "server_cpu_per_change": ratio_of(a.server_cpu_ms_per_change, b.server_cpu_ms_per_change),
    }
    if streams in P99_TARGET_STREAMS:
        found.targets.append({
            "target": f"(a) p99 < {P99_TARGET_MS:.0f} ms at {streams} streams",
            "value": a.latency_p99_ms,
            "passed": a.latency_p99_ms < P99_TARGET_MS,
        })  # fmt: skip
    found.targets.append({
        "target": f"(a) bytes/stream <= {BYTES_TARGET:,}",
        "value": a.bytes_per_stream,
        "passed": a.bytes_per_stream <= BYTES_TARGET,
    })  # fmt: skip
    memory = found.ratios["bytes_per_stream"]
    found.targets.append({
        "target": f"(a) bytes/stream <= {MEMORY_TARGET} x (b)",
        "value": memory,
        "passed": memory is not None and memory <= MEMORY_TARGET,
    })  # fmt: skip
    return found


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def busy_warnings(cmp: Comparison) -> list[str]:
    """Rounds whose server used less than ``BUSY_WARNING`` of a core between the POST and the
    last delivery: it was waiting for a CPU, so those latencies overstate the app's own."""
    found = []
    for key, res in cmp.results.items():
        for n, rnd in enumerate(res.rounds, 1):
            if rnd.server_busy is not None and rnd.max_ms >= BUSY_MIN_MS and rnd.server_busy < BUSY_WARNING:
                found.append(
                    f"({key}) N={cmp.streams} round {n}: the server used {rnd.server_busy:.0%} of a "
                    f"core (the load process {rnd.client_busy:.0%}) over its {rnd.max_ms:.0f} ms delivery"
                )
    return found


def print_comparison(cmp: Comparison, opts: FanoutOptions) -> None:
    """One table per N: latencies, memory, CPU; then the ratios and the targets."""
    print(f"\nN = {cmp.streams} streams, {opts.rounds} changes each "
          f"({cmp.streams * opts.rounds} deliveries per app)")  # fmt: skip
    print(
        f"{'':3}{'app':<32}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'bytes/stream':>14}"
        f"{'cpu ms/change':>15}{'open s':>8}"
    )
    for key, app in ((a.spec.key, a) for a in APPS):
        res = cmp.results[key]
        print(
            f"{key:<3}{app.spec.label:<32}{res.latency_p50_ms:>8.1f}{res.latency_p99_ms:>8.1f}"
            f"{res.latency_max_ms:>8.1f}{res.bytes_per_stream:>14.0f}"
            f"{_num(res.server_cpu_ms_per_change, '.1f'):>15}{res.connect_s:>8.1f}"
        )
    r = cmp.ratios
    print(
        f"a/b: latency p50 {_num(r['latency_p50'], '.2f')}, p99 {_num(r['latency_p99'], '.2f')}; "
        f"memory {_num(r['bytes_per_stream'], '.2f')}; server CPU per change "
        f"{_num(r['server_cpu_per_change'], '.2f')}"
    )
    for target in cmp.targets:
        verdict = "PASS" if target["passed"] else "FAIL"
        value = target["value"]
        shown = _num(value, ",.0f" if value is not None and value >= 1000 else ".2f")
        print(f"target {target['target']:<40} {shown:>9}   {verdict}")
    for warning in busy_warnings(cmp):
        print(f"warning: {warning}; the machine was busy, latencies are overstated")


def run_versions() -> dict[str, str]:
    """``harness.versions()``, which also asks wrk for its version: this benchmark does not use
    wrk, so a machine without it gets the Python packages' versions only."""
    try:
        return versions()
    except OSError:
        found = {"python": platform.python_version()}
        for dist in ("starmodel", "python-fasthtml", "starlette", "datastar-py", "uvicorn", "httptools",
                     "uvloop"):  # fmt: skip
            try:
                found[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                found[dist] = "not installed"
        return found


def loadavg() -> str | None:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return None


def save_json(
    comparisons: list[Comparison], opts: FanoutOptions, limit: int, load_before: str | None
) -> Path:
    """Write the run to ``bench/results/fanout.json``."""
    return write_json(RESULTS_FILE, {
        "benchmark": "fanout",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": asdict(opts),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "nofile": limit,
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
        },
        "versions": run_versions(),
        "apps": {a.spec.key: {"label": a.spec.label, "factory": a.spec.factory, "live_path": a.live_path}
                 for a in APPS},
        "streams": {
            str(c.streams): {
                "apps": {key: res.summary() for key, res in c.results.items()},
                "ratios_a_over_b": c.ratios,
                "targets": c.targets,
                "busy_warnings": busy_warnings(c),
            }
            for c in comparisons
        },
    })  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Measure both apps at every N; print and save the comparison."""
    opts = parse_args(argv)
    if isinstance(opts, ClientConfig):
        return client_main(opts)
    if opts.pin and not pinnable(opts.server_options()).pin:  # prints a note
        opts = replace(opts, pin=False)
    load_before = loadavg()
    if load_before and float(load_before.split()[0]) > (os.cpu_count() or 1) / 2:
        print(f"note: load average {load_before.split()[0]} before the run: other programs share the cores")
    try:
        limit = raise_open_files(max(opts.streams) + opts.warmup_streams + 64)
        comparisons = []
        for streams in opts.streams:
            results = {}
            for app in APPS:
                print(f"({app.spec.key}) {app.spec.label}, N={streams}: warm up, open, "
                      f"{opts.rounds} changes", flush=True)  # fmt: skip
                results[app.spec.key] = measure(app, streams, opts)
            comparisons.append(compare(streams, results))
    except BenchError as exc:
        print(f"\nBENCHMARK INVALID: {exc}", file=sys.stderr)
        return 1
    for cmp in comparisons:
        print_comparison(cmp, opts)
    print(f"\nsaved {save_json(comparisons, opts, limit, load_before).relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
