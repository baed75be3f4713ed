"""SQL event throughput: a StarModel SQL entity's event against a hand-written async SQLAlchemy
route doing the same update, on PostgreSQL.

One run measures, under the same uvicorn settings and the same wrk load (16 connections by
default), two apps answering ``POST /bench_row/increment?_key=1`` (add one to the ``n``
column of row 1 of ``bench_row`` and answer one ``datastar-patch-signals`` event):

* (a) StarModel: ``BenchRow(Entity, table=True)`` with an ``@event increment``;
* (b) FastHTML + async SQLAlchemy: ``UPDATE bench_row SET n = n + 1 WHERE id = 1 RETURNING n``
  in a transaction, answering datastar-py's ``DatastarResponse(SSE.patch_signals(...))``.

Every request of a run updates the same row: the apps compete for one record, the hardest case
for StarModel's optimistic versions (events on one record take turns in the process, and a
write that lost a race is re-run).

The benchmark works in a database of its own (``starmodel_bench`` next to the one ``--database``
names), created at the start and dropped at the end. Each app runs alone in its own uvicorn
process (pinned to one core when there are two; wrk gets the other; PostgreSQL floats), in
rounds a, b, a, b...; each app's figure is the median of its rounds. Every app is checked
before it is measured and again after: the row must have grown by the number of increments
answered (no lost and no extra update), the answers must carry the value the database holds,
and any non-2xx answer or socket error makes the run invalid (exit status 1).

Usage::

    python bench/sql_throughput.py [--database postgresql://postgres@127.0.0.1:5432/test]
                                   [--duration 5] [--connections 16] [--rounds 3]

StarModel is loaded with the session cookie its first answer set (as a browser would send it);
the hand-written route never touches the session, sets no cookie and gets none.
``profile_sql_event.py`` shows where the time of one event goes (database calls, cProfile).

It is a benchmark, not a test: a missed target prints FAIL but the exit status stays 0.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import IO, Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

# siblings, not a package: the wrk plumbing is shared with event_throughput.py
from event_throughput import (
    HOST,
    LOAD_CPU,
    LUA_SCRIPT,
    SERVER_CPU,
    BenchError,
    WrkResult,
    can_pin,
    check_load,
    cpu_seconds,
    free_port,
    parse_wrk,
    pin_to,
    require_wrk,
    stop_server,
    versions,
)
from sql_bench_apps import DATABASE_ENV, EVENT_PATH, TABLE, create_table_sql

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "sql_throughput.json"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_DATABASE = "starmodel_bench"
ROW_KEY = 1
EVENT_URL = f"{EVENT_PATH}?_key={ROW_KEY}"
EVENT_NAME = "datastar-patch-signals"
EVENT_HEADERS = {"Datastar-Request": "true", "Content-Type": "application/json"}
COOKIE_NAME = "starmodel_session"
STARTUP_TIMEOUT = 20.0
SETTLE_S = 0.3
SETTLE_TIMEOUT = 15.0
TARGET = 0.8  # a/b, median requests/s
_VALUE = re.compile(r'"n"\s*:\s*(\d+)')


@dataclass(frozen=True)
class AppSpec:
    """One contender: its letter, a label, and the factory in ``sql_bench_apps`` that builds it."""

    key: str
    label: str
    factory: str


APPS: tuple[AppSpec, ...] = (
    AppSpec("a", "StarModel SQL entity @event", "build_starmodel_sql_app"),
    AppSpec("b", "SQLAlchemy UPDATE + Datastar", "build_sqlalchemy_app"),
)


@dataclass(frozen=True)
class Options:
    """Settings shared by every app of one run (the wrk ones as ``event_throughput.Options``)."""

    duration: int
    connections: int
    threads: int
    warmup: int
    rounds: int
    http: str
    loop: str
    pin: bool
    database: str


@dataclass
class RoundResult:
    """One measurement of one app, with the row values that prove the work was done."""

    wrk: WrkResult
    server_cpu_s: float | None
    value_checked: int
    value_final: int
    answered: int
    requests_sent: int

    @property
    def requests_per_cpu_s(self) -> float | None:
        """Requests per second of server CPU time: what the app costs, whatever else runs."""
        if not self.server_cpu_s:
            return None
        return round(self.wrk.requests / self.server_cpu_s, 1)


@dataclass
class AppResult:
    """Every round of one app, summarised by medians."""

    key: str
    label: str
    factory: str
    rounds: list[RoundResult] = field(default_factory=list)

    @property
    def requests_per_s(self) -> float:
        return statistics.median(r.wrk.requests_per_s for r in self.rounds)

    @property
    def requests_per_cpu_s(self) -> float | None:
        values = [v for r in self.rounds if (v := r.requests_per_cpu_s) is not None]
        return statistics.median(values) if values else None

    @property
    def latency_p50_ms(self) -> float:
        return statistics.median(r.wrk.latency_p50_ms for r in self.rounds)

    @property
    def latency_p99_ms(self) -> float:
        return statistics.median(r.wrk.latency_p99_ms for r in self.rounds)

    def summary(self) -> dict[str, Any]:
        """The JSON record of this app: medians, then every round."""
        return {
            "label": self.label,
            "factory": self.factory,
            "requests_per_s": self.requests_per_s,
            "requests_per_s_all_rounds": [r.wrk.requests_per_s for r in self.rounds],
            "requests_per_server_cpu_s": self.requests_per_cpu_s,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "rounds": [{**asdict(r), "requests_per_cpu_s": r.requests_per_cpu_s} for r in self.rounds],
        }


@dataclass(frozen=True)
class Answer:
    """One HTTP answer from an app."""

    status: int
    body: str
    set_cookie: str | None


# --- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Read the command line into ``Options``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--database",
        default=os.environ.get("BENCH_ADMIN_URL", DEFAULT_DATABASE),
        help=f"a PostgreSQL database to connect to (default {DEFAULT_DATABASE}); the benchmark "
        f"creates and drops {BENCH_DATABASE!r} beside it",
    )
    parser.add_argument("--duration", type=int, default=5, help="measured seconds per app and round")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (-c)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds of load first")
    parser.add_argument("--rounds", type=int, default=3, help="rounds a, b, a, b...; medians are kept")
    parser.add_argument("--http", choices=("httptools", "h11"), default="httptools", help="uvicorn --http")
    parser.add_argument(
        "--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="uvicorn --loop"
    )
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin the server and wrk to cores"
    )
    ns = parser.parse_args(argv)
    if min(ns.duration, ns.connections, ns.threads, ns.rounds) < 1 or ns.warmup < 0:
        parser.error("--duration, --connections, --threads, --rounds must be >= 1; --warmup >= 0")
    if ns.threads > ns.connections:
        parser.error("--threads may not exceed --connections (wrk needs a connection per thread)")
    if make_url(ns.database).get_backend_name() != "postgresql":
        parser.error("--database must be a postgresql:// URL")
    return Options(
        ns.duration, ns.connections, ns.threads, ns.warmup, ns.rounds, ns.http, ns.loop, ns.pin,
        ns.database,
    )  # fmt: skip


# --- the database --------------------------------------------------------------------------


def _dsn(url: str) -> str:
    """A URL asyncpg accepts (no ``+driver`` part)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def bench_url(admin_url: str) -> str:
    """The URL of the benchmark's own database, beside the one given."""
    return make_url(_dsn(admin_url)).set(database=BENCH_DATABASE).render_as_string(hide_password=False)


async def _execute(url: str, statements: Sequence[str]) -> None:
    conn = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def create_database(admin_url: str) -> str:
    """(Re)create the benchmark's database with its table and row; returns its URL."""
    drop = f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"
    try:
        asyncio.run(_execute(admin_url, [drop, f"CREATE DATABASE {BENCH_DATABASE}"]))
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(f"cannot create the database {BENCH_DATABASE!r} via {admin_url}: {exc}") from None
    url = bench_url(admin_url)
    asyncio.run(_execute(url, create_table_sql()))
    return url


def drop_database(admin_url: str) -> None:
    """Drop the benchmark's database (whatever state it is in)."""
    asyncio.run(_execute(admin_url, [f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"]))


async def _row(url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        found = await conn.fetchrow(f"SELECT n, sm_version FROM {TABLE} WHERE id = $1", ROW_KEY)
    finally:
        await conn.close()
    if found is None:
        raise BenchError(f"row {ROW_KEY} of {TABLE} is gone")
    return int(found["n"]), int(found["sm_version"])


def row_value(url: str) -> int:
    """``n`` of the benchmark's row, read from the database itself."""
    return asyncio.run(_row(url))[0]


def settled_value(url: str, key: str) -> int:
    """``n`` once the app has finished the requests wrk left in flight when it stopped (the
    value stays put for ``SETTLE_S``)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    value = row_value(url)
    while time.monotonic() < deadline:
        time.sleep(SETTLE_S)
        again = row_value(url)
        if again == value:
            return value
        value = again
    raise BenchError(f"({key}) n still changes {SETTLE_TIMEOUT}s after the load stopped")


# --- servers -------------------------------------------------------------------------------


def uvicorn_command(spec: AppSpec, port: int, opts: Options) -> list[str]:
    """The uvicorn command line, identical for both apps but for the factory and the port."""
    return [
        sys.executable, "-m", "uvicorn", f"sql_bench_apps:{spec.factory}", "--factory",
        "--app-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port),
        "--workers", "1", "--no-access-log", "--log-level", "warning",
        "--http", opts.http, "--loop", opts.loop,
    ]  # fmt: skip


def start_server(
    spec: AppSpec, port: int, opts: Options, url: str, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start the app's uvicorn (database URL in its environment) and wait until it listens."""
    proc = subprocess.Popen(
        uvicorn_command(spec, port, opts),
        cwd=BENCH_DIR.parent,
        env={**os.environ, DATABASE_ENV: url},
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=pin_to(SERVER_CPU if opts.pin else None),  # we are single-threaded
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"({spec.key}) uvicorn exited with status {proc.returncode}")
        try:
            http.client.HTTPConnection(HOST, port, timeout=0.5).connect()
            return proc
        except OSError:
            time.sleep(0.1)
    stop_server(proc)
    raise BenchError(f"({spec.key}) uvicorn did not listen on port {port} in {STARTUP_TIMEOUT}s")


# --- correctness ---------------------------------------------------------------------------


def post_event(port: int, cookie: str | None) -> Answer:
    """Send the benchmark's event once, as the Datastar client would."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = dict(EVENT_HEADERS)
        if cookie:
            headers["Cookie"] = cookie
        conn.request("POST", EVENT_URL, body=b"{}", headers=headers)
        resp = conn.getresponse()
        return Answer(resp.status, resp.read().decode(), resp.getheader("set-cookie"))
    finally:
        conn.close()


def value_of(answer: Answer, key: str) -> int:
    """The row's new value in a correct answer; raise if the answer is not one."""
    if answer.status != 200:
        raise BenchError(f"({key}) status {answer.status}, expected 200: {answer.body[:300]!r}")
    if EVENT_NAME not in answer.body:
        raise BenchError(f"({key}) no {EVENT_NAME} event in the answer: {answer.body[:200]!r}")
    match = _VALUE.search(answer.body)
    if match is None:
        raise BenchError(f"({key}) no value of n in the answer: {answer.body[:200]!r}")
    return int(match.group(1))


def session_cookie(set_cookie: str | None) -> str | None:
    """The session cookie an app set (StarModel does, on the first event), for a Cookie header;
    ``None`` when it set none (the hand-written route does not use the session)."""
    jar: SimpleCookie = SimpleCookie()
    jar.load(set_cookie or "")
    morsel = jar.get(COOKIE_NAME)
    return f"{COOKIE_NAME}={morsel.coded_value}" if morsel is not None else None


def verify_app(key: str, port: int, url: str) -> tuple[str | None, int]:
    """Two events in a row: both answer 200 with the database's new value, one more each time.

    Returns the cookie to load the app with (a browser would have one) and the value reached.
    """
    first = post_event(port, None)
    before = value_of(first, key)
    cookie = session_cookie(first.set_cookie)
    after = value_of(post_event(port, cookie), key)
    if after != before + 1:
        raise BenchError(f"({key}) two increments took n from {before} to {after}")
    stored = row_value(url)
    if stored != after:
        raise BenchError(f"({key}) the app answered n={after}, the database holds {stored}")
    return cookie, after


def check_value(key: str, checked: int, final: int, stored: int, answered: int, slack: int) -> None:
    """Every answered increment is in the row (no lost update), and no more than the requests
    wrk may have left in flight when it stopped (no increment applied twice)."""
    grown = final - checked
    if stored != final:
        raise BenchError(f"({key}) the last answer says n={final}, the database holds {stored}")
    if grown < answered:
        raise BenchError(
            f"({key}) n grew by {grown}, but {answered} increments were answered: updates were lost"
        )
    if grown > answered + slack:
        raise BenchError(
            f"({key}) n grew by {grown} for {answered} answered increments (at most {slack} "
            "more were in flight): some increments were applied twice"
        )


# --- load ----------------------------------------------------------------------------------


def run_wrk(wrk: str, port: int, cookie: str | None, seconds: int, opts: Options) -> WrkResult:
    """wrk with ``event.lua`` (POST, Datastar headers, body, cookie) against the event URL."""
    command = [
        wrk, f"-t{opts.threads}", f"-c{opts.connections}", f"-d{seconds}s",
        "-s", str(LUA_SCRIPT), f"http://{HOST}:{port}", "--", EVENT_URL, *([cookie] if cookie else []),
    ]  # fmt: skip
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
        preexec_fn=pin_to(LOAD_CPU if opts.pin else None),  # we are single-threaded
    )
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return parse_wrk(proc.stdout)


def measure_app(spec: AppSpec, wrk: str, opts: Options, url: str) -> RoundResult:
    """Start the app alone, check it, warm it up, measure it, check it again, stop it."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = start_server(spec, port, opts, url, log)
        try:
            return _load_app(spec, proc.pid, port, wrk, opts, url)
        except BenchError:
            stop_server(proc)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])
            raise
        finally:
            stop_server(proc)


def _load_app(spec: AppSpec, pid: int, port: int, wrk: str, opts: Options, url: str) -> RoundResult:
    cookie, checked = verify_app(spec.key, port, url)
    sent, runs = 0, 0
    if opts.warmup:
        warm = run_wrk(wrk, port, cookie, opts.warmup, opts)
        check_load(spec.key, "warm-up", warm)
        sent, runs = sent + warm.requests, runs + 1
    cpu_before = cpu_seconds(pid)
    result = run_wrk(wrk, port, cookie, opts.duration, opts)
    cpu_after = cpu_seconds(pid)
    check_load(spec.key, "measurement", result)
    sent, runs = sent + result.requests, runs + 1
    settled_value(url, spec.key)
    final = value_of(post_event(port, cookie), spec.key)
    answered = sent + 1  # wrk's completed requests and the check's own
    check_value(spec.key, checked, final, row_value(url), answered, slack=runs * opts.connections)
    cpu = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2)
    return RoundResult(result, cpu, checked, final, answered, sent)


# --- report --------------------------------------------------------------------------------


def _ratio(num: float | None, den: float | None) -> float | None:
    return round(num / den, 3) if num is not None and den else None


def busy_warnings(results: dict[str, AppResult]) -> list[str]:
    """Rounds whose server got less than 90% of a core (it waited for the database, or the
    machine was busy)."""
    found = []
    for res in results.values():
        for n, rnd in enumerate(res.rounds, 1):
            if rnd.server_cpu_s is not None and rnd.server_cpu_s < 0.9 * rnd.wrk.duration_s:
                share = rnd.server_cpu_s / rnd.wrk.duration_s
                found.append(f"({res.key}) round {n}: the server used {share:.0%} of a core")
    return found


def print_report(results: dict[str, AppResult], ratio: dict[str, Any], opts: Options) -> None:
    """The table of requests/s and the ratio against its target."""
    print(
        f"\nSQL event throughput on PostgreSQL  (one row, wrk -t{opts.threads} -c{opts.connections} "
        f"-d{opts.duration}s x {opts.rounds} rounds, uvicorn 1 worker, --http {opts.http} "
        f"--loop {opts.loop}, pinned: {'yes' if opts.pin else 'no'}; medians)"
    )
    print(f"{'':3}{'app':<30}{'req/s':>9}{'min':>8}{'max':>8}{'req/cpu-s':>11}{'p50 ms':>8}{'p99 ms':>8}")
    for res in results.values():
        rps = [r.wrk.requests_per_s for r in res.rounds]
        per_cpu = res.requests_per_cpu_s
        print(
            f"{res.key:<3}{res.label:<30}{res.requests_per_s:>9.0f}{min(rps):>8.0f}"
            f"{max(rps):>8.0f}{(f'{per_cpu:.0f}' if per_cpu else '-'):>11}"
            f"{res.latency_p50_ms:>8.2f}{res.latency_p99_ms:>8.2f}"
        )
    verdict = "PASS" if ratio["passed"] else "FAIL"
    cpu = ratio["per_server_cpu_s"]
    print(
        f"\na/b = {ratio['value']:.2f}   target {ratio['target']:<7} {verdict}"
        f"   (per server CPU-second: {cpu if cpu is not None else '-'})"
    )
    for warning in busy_warnings(results):
        print(f"note: {warning}")


def save_json(results: dict[str, AppResult], ratio: dict[str, Any], opts: Options) -> Path:
    """Write the run to ``bench/results/sql_throughput.json``."""
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    server = make_url(opts.database)
    record = {
        "benchmark": "sql_throughput",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {**asdict(opts), "database": f"{server.host}:{server.port}/{BENCH_DATABASE}"},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {**versions(), "asyncpg": asyncpg.__version__},
        "apps": {key: res.summary() for key, res in results.items()},
        "ratio": ratio,
        "busy_warnings": busy_warnings(results),
    }
    RESULTS_FILE.write_text(json.dumps(record, indent=2) + "\n")
    return RESULTS_FILE


def main(argv: Sequence[str] | None = None) -> int:
    """Create the database, measure both apps round after round, report, drop the database."""
    opts = parse_args(argv)
    wrk = require_wrk()
    if opts.pin and not can_pin():
        print("note: fewer than two usable cores; server and wrk are not pinned", file=sys.stderr)
        opts = Options(**{**asdict(opts), "pin": False})
    results = {spec.key: AppResult(spec.key, spec.label, spec.factory) for spec in APPS}
    try:
        url = create_database(opts.database)
        for n in range(1, opts.rounds + 1):
            for spec in APPS:
                print(
                    f"round {n}/{opts.rounds} ({spec.key}) {spec.label}: check, "
                    f"warm up {opts.warmup}s, measure {opts.duration}s",
                    end="",
                    flush=True,
                )
                rnd = measure_app(spec, wrk, opts, url)
                results[spec.key].rounds.append(rnd)
                print(f"  -> {rnd.wrk.requests_per_s:.0f} req/s", flush=True)
    except BenchError as exc:
        print(f"\nBENCHMARK INVALID: {exc}", file=sys.stderr)
        return 1
    finally:
        try:
            drop_database(opts.database)
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"warning: could not drop the database {BENCH_DATABASE!r}: {exc}", file=sys.stderr)
    a, b = results["a"], results["b"]
    value = _ratio(a.requests_per_s, b.requests_per_s) or 0.0
    ratio = {
        "ratio": "a/b",
        "value": value,
        "target": f">= {TARGET}",
        "passed": value >= TARGET,
        "per_server_cpu_s": _ratio(a.requests_per_cpu_s, b.requests_per_cpu_s),
    }
    print_report(results, ratio, opts)
    print(f"\nsaved {save_json(results, ratio, opts).relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
