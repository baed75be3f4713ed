"""SQL event throughput: a StarModel SQL entity's event against a hand-written async SQLAlchemy
route doing the same update, on PostgreSQL.

One run measures, under the same uvicorn settings and the same wrk load (16 connections by
default), two apps answering ``POST /bench_row/increment?_key=K`` (add one to the ``n``
column of row K of ``bench_row`` and answer one ``datastar-patch-signals`` event):

* (a) StarModel: ``BenchRow(Entity, table=True)`` with an ``@event increment``;
* (b) FastHTML + async SQLAlchemy: ``UPDATE bench_row SET n = n + 1 WHERE id = K RETURNING n``
  in a transaction, answering datastar-py's ``DatastarResponse(SSE.patch_signals(...))``.

in three modes (``--mode``, all three by default), each with its target for a/b:

* ``hot``: every request on row 1: the apps compete for one record, the hardest case for
  StarModel's optimistic versions (events on one record take turns in the process, and a
  write that lost a race is re-run);
* ``spread``: each request on a row drawn at random among the table's 1,000 (``spread.lua``);
* ``busy``: ``hot`` while another process keeps the other core (the one wrk runs on) busy,
  so that the database and the load generator get less time and every round trip is slower.

The benchmark works in a database of its own (``starmodel_bench`` next to the one ``--database``
names), created at the start and dropped at the end. Each app runs alone in its own uvicorn
process (pinned to one core when there are two; wrk gets the other; PostgreSQL floats), in
rounds a, b, a, b...; each app's figure is the median of its rounds. Every app is checked
before it is measured and again after: the row must have grown by the number of increments
answered (no lost and no extra update), the answers must carry the value the database holds,
and any non-2xx answer or socket error makes the run invalid (exit status 1).

Usage::

    python bench/sql_throughput.py [--database postgresql://postgres@127.0.0.1:5432/test]
                                   [--mode hot,spread,busy] [--duration 5] [--connections 16]
                                   [--rounds 3]

StarModel is loaded with the session cookie its first answer set (as a browser would send it);
the hand-written route never touches the session, sets no cookie and gets none.
``profile_sql_event.py`` shows where the time of one event goes (database calls, cProfile).

It is a benchmark, not a test: a missed target prints FAIL but the exit status stays 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

# siblings, not a package: the wrk plumbing is shared with event_throughput.py
from harness import (
    HOST,
    LOAD_CPU,
    Answer,
    AppResult,
    AppSpec,
    BenchError,
    Options,
    Round,
    WrkResult,
    add_load_arguments,
    busy_warnings,
    check_load_arguments,
    find_session_cookie,
    load_and_measure,
    measure_app,
    parse_wrk,
    pin_to,
    pinnable,
    print_ratio,
    print_table,
    ratio_row,
    require_wrk,
    run_rounds,
    run_wrk,
    start_server,
    value_in,
    versions,
    write_json,
)
from harness import post_event as _post_event
from sql_bench_apps import DATABASE_ENV, EVENT_PATH, ROWS, TABLE, create_table_sql

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "sql_throughput.json"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_DATABASE = "starmodel_bench"
ROW_KEY = 1
EVENT_URL = f"{EVENT_PATH}?_key={ROW_KEY}"
APPS_MODULE = "sql_bench_apps"
SPREAD_SCRIPT = BENCH_DIR / "spread.lua"
SETTLE_S = 0.3
SETTLE_TIMEOUT = 15.0
_VALUE = re.compile(r'"n"\s*:\s*(\d+)')


@dataclass(frozen=True)
class Mode:
    """One way of loading the apps, and its target for a/b (median requests/s)."""

    name: str
    title: str
    target: float
    spread: bool = False  # requests on rows drawn among ROWS, else all on ROW_KEY
    busy: bool = False  # another process keeps the load generator's core busy


MODES = {
    mode.name: mode
    for mode in (
        Mode("hot", "one row", 1.2),
        Mode("spread", f"{ROWS:,} rows, each request on one drawn at random", 1.2, spread=True),
        Mode("busy", "one row, the other core kept busy by another process", 1.0, busy=True),
    )
}


APPS: tuple[AppSpec, ...] = (
    AppSpec("a", "StarModel SQL entity @event", "build_starmodel_sql_app"),
    AppSpec("b", "SQLAlchemy UPDATE + Datastar", "build_sqlalchemy_app"),
)


@dataclass(frozen=True)
class SqlOptions(Options):
    """Settings shared by every app of one run: the wrk ones, and the database."""

    database: str
    modes: tuple[str, ...]


@dataclass
class RoundResult(Round):
    """One measurement of one app, with the row values that prove the work was done (in
    ``spread`` mode, the sum of every row's ``n``)."""

    value_checked: int
    value_final: int
    answered: int
    requests_sent: int


# --- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> SqlOptions:
    """Read the command line into ``SqlOptions``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--database",
        default=os.environ.get("BENCH_ADMIN_URL", DEFAULT_DATABASE),
        help=f"a PostgreSQL database to connect to (default {DEFAULT_DATABASE}); the benchmark "
        f"creates and drops {BENCH_DATABASE!r} beside it",
    )
    parser.add_argument(
        "--mode",
        default=",".join(MODES),
        help=f"comma-separated modes to run, in order (default: all: {','.join(MODES)})",
    )
    add_load_arguments(
        parser,
        rounds_help="rounds a, b, a, b...; medians are kept",
        http_default="httptools",
        no_pin_help="do not pin the server and wrk to cores",
    )
    ns = parser.parse_args(argv)
    check_load_arguments(parser, ns)
    if make_url(ns.database).get_backend_name() != "postgresql":
        parser.error("--database must be a postgresql:// URL")
    modes = tuple(name.strip() for name in ns.mode.split(",") if name.strip())
    unknown = [name for name in modes if name not in MODES]
    if unknown or not modes:
        parser.error(f"--mode: unknown {unknown or 'nothing'}; choose among {', '.join(MODES)}")
    return SqlOptions(
        ns.duration, ns.connections, ns.threads, ns.warmup, ns.rounds, ns.http, ns.loop, ns.pin,
        ns.database, modes,
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


async def _total(url: str) -> int:
    conn = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        return int(await conn.fetchval(f"SELECT COALESCE(SUM(n), 0) FROM {TABLE}"))
    finally:
        await conn.close()


def total_value(url: str) -> int:
    """The sum of ``n`` over every row, read from the database itself."""
    return asyncio.run(_total(url))


def settled_value(url: str, key: str, read: Callable[[str], int] = row_value) -> int:
    """``read(url)`` once the app has finished the requests wrk left in flight when it stopped
    (the value stays put for ``SETTLE_S``)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    value = read(url)
    while time.monotonic() < deadline:
        time.sleep(SETTLE_S)
        again = read(url)
        if again == value:
            return value
        value = again
    raise BenchError(f"({key}) n still changes {SETTLE_TIMEOUT}s after the load stopped")


# --- correctness ---------------------------------------------------------------------------


def post_event(port: int, cookie: str | None) -> Answer:
    """Send the benchmark's event once, as the Datastar client would."""
    return _post_event(port, EVENT_URL, cookie)


def value_of(answer: Answer, key: str) -> int:
    """The row's new value in a correct answer; raise if the answer is not one."""
    return value_in(answer, key, _VALUE, "value of n", 300)


def session_cookie(set_cookie: str | None) -> str | None:
    """The session cookie an app set (StarModel does, on the first event), for a Cookie header;
    ``None`` when it set none (the hand-written route does not use the session)."""
    return find_session_cookie(set_cookie)


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
    wrk may have left in flight when it stopped (no increment applied twice). ``stored`` is
    read once the row stopped changing after the last answer (``final``): on a busy machine
    requests wrk gave up on may still land after it."""
    if stored < final:
        raise BenchError(f"({key}) the last answer says n={final}, the database holds {stored}")
    check_growth(key, stored - checked, answered, slack)


def check_growth(key: str, grown: int, answered: int, slack: int) -> None:
    """``grown`` increments stored for ``answered`` answers: none lost, none applied twice."""
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


def _start(spec: AppSpec, opts: SqlOptions, url: str, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """The app's uvicorn, with the database URL in its environment."""
    return start_server(APPS_MODULE, spec, port, opts, log, env={**os.environ, DATABASE_ENV: url})


def run_spread_wrk(wrk: str, port: int, cookie: str | None, seconds: int, opts: Options) -> WrkResult:
    """wrk with ``spread.lua``: each request on a row drawn among ``ROWS``."""
    command = [
        wrk, f"-t{opts.threads}", f"-c{opts.connections}", f"-d{seconds}s", "-s", str(SPREAD_SCRIPT),
        f"http://{HOST}:{port}", "--", EVENT_PATH, str(ROWS), *([cookie] if cookie else []),
    ]  # fmt: skip
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False,
        preexec_fn=pin_to(LOAD_CPU if opts.pin else None),
    )  # fmt: skip
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return parse_wrk(proc.stdout)


def _load_app(
    spec: AppSpec, wrk: str, opts: SqlOptions, url: str, mode: Mode, pid: int, port: int
) -> RoundResult:
    cookie, checked = verify_app(spec.key, port, url)
    if mode.spread:
        before = total_value(url)
        load = load_and_measure(
            spec.key, pid, opts, lambda seconds: run_spread_wrk(wrk, port, cookie, seconds, opts)
        )
        after = settled_value(url, spec.key, total_value)
        check_growth(spec.key, after - before, load.sent, slack=load.runs * opts.connections)
        return RoundResult(load.result, load.cpu_s, before, after, load.sent, load.sent)
    load = load_and_measure(
        spec.key, pid, opts, lambda seconds: run_wrk(wrk, port, EVENT_URL, cookie, seconds, opts)
    )
    settled_value(url, spec.key)
    final = value_of(post_event(port, cookie), spec.key)
    answered = load.sent + 1  # wrk's completed requests and the check's own
    stored = settled_value(url, spec.key)
    check_value(spec.key, checked, final, stored, answered, slack=load.runs * opts.connections)
    return RoundResult(load.result, load.cpu_s, checked, final, answered, load.sent)


def measure(spec: AppSpec, wrk: str, opts: SqlOptions, url: str, mode: Mode) -> RoundResult:
    """Start the app alone, check it, warm it up, measure it, check it again, stop it."""
    return measure_app(
        spec, partial(_start, spec, opts, url), partial(_load_app, spec, wrk, opts, url, mode)
    )


@contextlib.contextmanager
def busy_core(opts: Options, busy: bool) -> Iterator[None]:
    """While the block runs (``busy``), a process spinning on the load generator's core (on
    any core when nothing is pinned)."""
    if not busy:
        yield
        return
    spinner = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"], preexec_fn=pin_to(LOAD_CPU if opts.pin else None)
    )
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


# --- report --------------------------------------------------------------------------------


@dataclass
class ModeResult:
    """Both apps' results in one mode, and a/b against the mode's target."""

    mode: Mode
    results: dict[str, AppResult]
    ratio: dict[str, Any]
    load_average: tuple[float, float, float]


def print_report(run: ModeResult, opts: SqlOptions) -> None:
    """The mode's table of requests/s and its ratio against the target."""
    print(
        f"\nSQL event throughput on PostgreSQL, mode {run.mode.name}: {run.mode.title}  "
        f"(wrk -t{opts.threads} -c{opts.connections} -d{opts.duration}s x {opts.rounds} rounds, "
        f"uvicorn 1 worker, --http {opts.http} --loop {opts.loop}, pinned: "
        f"{'yes' if opts.pin else 'no'}; medians; load average {_load(run.load_average)})"
    )
    print_table(run.results)
    print_ratio(run.ratio, prefix="\n")
    for warning in busy_warnings(run.results, "used"):
        print(f"note: {warning}")


def _load(average: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in average)


def print_summary(runs: list[ModeResult]) -> None:
    """Every mode's a/b against its target, one line each."""
    print("\nsummary")
    for run in runs:
        print_ratio(run.ratio, prefix=f"  {run.mode.name:<7}")


def save_json(runs: list[ModeResult], opts: SqlOptions) -> Path:
    """Write the run to ``bench/results/sql_throughput.json``."""
    server = make_url(opts.database)
    return write_json(RESULTS_FILE, {
        "benchmark": "sql_throughput",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {**asdict(opts), "database": f"{server.host}:{server.port}/{BENCH_DATABASE}"},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {**versions(), "asyncpg": asyncpg.__version__},
        "modes": {
            run.mode.name: {
                "title": run.mode.title,
                "load_average_after": run.load_average,
                "apps": {key: res.summary() for key, res in run.results.items()},
                "ratio": run.ratio,
                "busy_warnings": busy_warnings(run.results, "used"),
            }
            for run in runs
        },
    })  # fmt: skip


def run_mode(mode: Mode, wrk: str, opts: SqlOptions) -> ModeResult:
    """Both apps, round after round, in a fresh database, in one mode."""
    try:
        url = create_database(opts.database)
        with busy_core(opts, mode.busy):
            results = run_rounds(APPS, opts, lambda spec: measure(spec, wrk, opts, url, mode))
    finally:
        try:
            drop_database(opts.database)
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"warning: could not drop the database {BENCH_DATABASE!r}: {exc}", file=sys.stderr)
    ratio = ratio_row("a/b", results["a"], results["b"], mode.target)
    return ModeResult(mode, results, ratio, os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    """Each mode in turn: create the database, measure both apps round after round, drop the
    database, report; then every mode's ratio."""
    opts = parse_args(argv)
    wrk = require_wrk()
    opts = pinnable(opts)
    print(f"load average before: {_load(os.getloadavg())}")
    runs: list[ModeResult] = []
    for name in opts.modes:
        mode = MODES[name]
        print(f"\nmode {mode.name}: {mode.title}")
        try:
            runs.append(run_mode(mode, wrk, opts))
        except BenchError as exc:
            print(f"\nBENCHMARK INVALID ({mode.name}): {exc}", file=sys.stderr)
            return 1
        print_report(runs[-1], opts)
    print_summary(runs)
    print(f"\nsaved {save_json(runs, opts).relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
