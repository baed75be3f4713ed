"""Event throughput: StarModel's full event path against two hand-written FastHTML routes.

One run measures, under the same server settings and the same wrk load, four apps answering
``POST /bench_counter/increment`` (increment a per-session counter, answer with one
``datastar-patch-signals`` SSE event):

* (a) StarModel: ``BenchCounter(Entity)`` with an ``@event increment``;
* (b) FastHTML + datastar-py's ``DatastarResponse(SSE.patch_signals(...))``;
* (c) FastHTML + a plain Starlette ``Response`` carrying the same SSE body;
* (g) the StarModel app of (a) served by granian instead of uvicorn (``--server granian``);
* (d) the demo (``demo/app.py``: every page, the auth plugin, generated CRUD and admin, jobs)
  as a user serves it, ``starmodel run demo --log-level warning``, answering its counter's
  ``POST /counter/increment``: the same kind of event inside a whole app.

Each app runs alone in its own server process (pinned to one core when there are two; wrk gets
the other), in rounds a, b, c, g, a, b, c, g... so that a passing burst of load elsewhere on the
machine does not hit one app only; each app's figure is the median of its rounds. Every app is
checked before it is measured, and its counter is checked again after the load, so errors
cannot pass for throughput. The server's CPU time is read from ``/proc`` too: requests per
server CPU-second is the steadier figure when other programs share the cores.

Usage::

    python bench/event_throughput.py [--duration 5] [--connections 16] [--rounds 3] [--apps a,b,c,d]

It is a benchmark, not a test: missed targets print FAIL but the exit status stays 0. Broken
answers (wrong status or body, non-2xx responses, socket errors) exit with status 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# siblings, not a package: the wrk plumbing is shared with sql_throughput.py
from harness import (
    BENCH_DIR,
    COOKIE_NAME,
    HOST,
    SERVER_CPU,
    Answer,
    AppResult,
    AppSpec,
    BenchError,
    Options,
    Round,
    add_load_arguments,
    busy_warnings,
    check_load_arguments,
    find_session_cookie,
    load_and_measure,
    measure_app,
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
    wait_listening,
    write_json,
)
from harness import post_event as _post_event

RESULTS_FILE = BENCH_DIR / "results" / "event_throughput.json"
APPS_MODULE = "bench_apps"
EVENT_PATH = "/bench_counter/increment"
DEMO_EVENT_PATH = "/counter/increment"
STARMODEL_RUN = "starmodel-run"
DEMO_STARTUP_TIMEOUT = 90.0
_COUNT = re.compile(r'"count"\s*:\s*(\d+)')

APPS: tuple[AppSpec, ...] = (
    AppSpec("a", "StarModel entity @event", "build_starmodel_app"),
    AppSpec("b", "FastHTML + DatastarResponse", "build_datastar_app"),
    AppSpec("c", "FastHTML + plain Response", "build_plain_app"),
    AppSpec("g", "StarModel @event on granian", "build_starmodel_app", server="granian"),
    AppSpec("d", "demo: starmodel run demo", "demo", server=STARMODEL_RUN),
)
PATHS = {"d": DEMO_EVENT_PATH}
"""The event each app answers, when it is not ``EVENT_PATH``."""


@dataclass(frozen=True)
class Target:
    """A throughput ratio the StarModel path should reach, e.g. ``a/b >= 2.5``."""

    numerator: str
    denominator: str
    minimum: float

    @property
    def name(self) -> str:
        return f"{self.numerator}/{self.denominator}"


TARGETS: tuple[Target, ...] = (
    Target("a", "b", 2.5),
    Target("a", "c", 0.8),
    Target("g", "a", 0.9),
    Target("d", "b", 2.5),
    Target("d", "c", 0.9),
)


@dataclass
class RoundResult(Round):
    """One measurement of one app, with the counter values that prove the work was done."""

    counter_checked: int
    counter_final: int
    requests_sent: int


# --- command line --------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(
        parser,
        rounds_help="rounds a, b, c, g, d, a, b, c, g, d...; each app's result is its median",
        http_default=_default_http(),
        no_pin_help="do not pin the server and wrk to separate cores",
    )
    parser.add_argument(
        "--apps", default=",".join(spec.key for spec in APPS),
        help="the apps to measure, comma-separated (default: all)",
    )  # fmt: skip
    ns = parser.parse_args(argv)
    check_load_arguments(parser, ns)
    unknown = set(ns.apps.split(",")) - {spec.key for spec in APPS}
    if unknown:
        parser.error(f"--apps: no app {', '.join(sorted(unknown))}")
    return ns


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Read the command line into ``Options``."""
    ns = _parse(argv)
    return Options(ns.duration, ns.connections, ns.threads, ns.warmup, ns.rounds, ns.http, ns.loop, ns.pin)


def selected_apps(argv: Sequence[str] | None = None) -> tuple[AppSpec, ...]:
    """The apps ``--apps`` names, in the order of ``APPS``."""
    keys = set(_parse(argv).apps.split(","))
    return tuple(spec for spec in APPS if spec.key in keys)


def _default_http() -> str:
    """httptools when installed (uvicorn's fast parser), else h11."""
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


# --- correctness ---------------------------------------------------------------------------


def post_event(port: int, cookie: str | None, path: str = EVENT_PATH) -> Answer:
    """Send the benchmark's event once, as the Datastar client would."""
    return _post_event(port, path, cookie)


def session_cookie(set_cookie: str | None) -> str:
    """``starmodel_session=...`` from a Set-Cookie header, ready for a Cookie header."""
    cookie = find_session_cookie(set_cookie)
    if cookie is None:
        raise BenchError(f"no {COOKIE_NAME} cookie in the answer (Set-Cookie: {set_cookie!r})")
    return cookie


def counter_of(answer: Answer, key: str) -> int:
    """The counter value in a correct answer; raise if the answer is not one."""
    return value_in(answer, key, _COUNT, "counter value", 200)


def verify_app(key: str, port: int) -> tuple[str, int]:
    """Check the app's answer (200, the SSE event, a counter that increases within a session).

    Returns the session cookie to load the app with and the counter value it has reached.
    """
    path = PATHS.get(key, EVENT_PATH)
    first = post_event(port, None, path)
    before = counter_of(first, key)
    cookie = session_cookie(first.set_cookie)
    after = counter_of(post_event(port, cookie, path), key)
    if after <= before:
        raise BenchError(f"({key}) the counter did not increase: {before} then {after}")
    return cookie, after


def check_counter(key: str, checked: int, final: int, sent: int) -> None:
    """The counter must have moved by at least every request wrk saw completed (plus ours)."""
    if final - checked < sent + 1:
        raise BenchError(
            f"({key}) the counter went from {checked} to {final}, but {sent + 1} "
            "increments were answered: the app did not do the work it reported"
        )


# --- one app -------------------------------------------------------------------------------


def _start(spec: AppSpec, opts: Options, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    if spec.server == STARMODEL_RUN:
        return start_starmodel_run(spec, port, opts, log)
    return start_server(APPS_MODULE, spec, port, opts, log)


_SCRATCH: list[tempfile.TemporaryDirectory[str]] = []


def _scratch() -> tempfile.TemporaryDirectory[str]:
    """A folder for the demo's databases, removed when the benchmark ends."""
    if not _SCRATCH:
        _SCRATCH.append(tempfile.TemporaryDirectory(prefix="starmodel-bench-"))
    return _SCRATCH[0]


def start_starmodel_run(spec: AppSpec, port: int, opts: Options, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """``starmodel run <app> --log-level warning`` (the CLI a user runs, from this checkout),
    pinned like the uvicorn servers; its SQL tables go to a throw-away SQLite file."""
    command = [
        sys.executable, "-m", "starmodel.cli.main", "run", spec.factory, "--host", HOST,
        "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    database = Path(_scratch().name) / f"demo-{port}.db"
    proc = subprocess.Popen(
        command,
        cwd=BENCH_DIR.parent,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{database}"},
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=pin_to(SERVER_CPU if opts.pin else None),  # we are single-threaded
    )
    return wait_listening(proc, port, DEMO_STARTUP_TIMEOUT, f"({spec.key}) starmodel run")


def _load_app(spec: AppSpec, wrk: str, opts: Options, pid: int, port: int) -> RoundResult:
    """Verification, warm-up, measurement and the final counter check of a running app."""
    cookie, checked = verify_app(spec.key, port)
    path = PATHS.get(spec.key, EVENT_PATH)
    load = load_and_measure(
        spec.key, pid, opts, lambda seconds: run_wrk(wrk, port, path, cookie, seconds, opts)
    )
    final = counter_of(post_event(port, cookie, path), spec.key)
    check_counter(spec.key, checked, final, load.sent)
    return RoundResult(load.result, load.cpu_s, checked, final, load.sent)


def measure(spec: AppSpec, wrk: str, opts: Options) -> RoundResult:
    """Start the app alone, check it, warm it up, measure it, check it again, stop it."""
    return measure_app(spec, partial(_start, spec, opts), partial(_load_app, spec, wrk, opts))


# --- report --------------------------------------------------------------------------------


def ratios(results: dict[str, AppResult]) -> list[dict[str, Any]]:
    """Each target's ratio of median requests/s, whether it is met, and the CPU-time ratio."""
    return [
        ratio_row(t.name, results[t.numerator], results[t.denominator], t.minimum)
        for t in TARGETS
        if t.numerator in results and t.denominator in results
    ]


def print_report(results: dict[str, AppResult], rows: list[dict[str, Any]], opts: Options) -> None:
    """The table of requests/s and the ratios against their targets."""
    print(
        f"\nEvent throughput  (wrk -t{opts.threads} -c{opts.connections} -d{opts.duration}s "
        f"x {opts.rounds} rounds, 1 worker (uvicorn --http {opts.http} --loop {opts.loop}; "
        "granian --http 1), "
        f"pinned: {'yes' if opts.pin else 'no'}; medians)"
    )
    print_table(results)
    print()
    for row in rows:
        print_ratio(row)
    for warning in busy_warnings(results, "got"):
        print(
            f"warning: {warning}; the machine was busy, req/s is understated "
            "(req/cpu-s is the steadier figure)"
        )


def _loadavg() -> str | None:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return None


def save_json(results: dict[str, AppResult], rows: list[dict[str, Any]], opts: Options) -> Path:
    """Write the run to ``bench/results/event_throughput.json``."""
    return write_json(RESULTS_FILE, {
        "benchmark": "event_throughput",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": asdict(opts),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_after": _loadavg(),
        },
        "versions": versions(),
        "apps": {key: res.summary() for key, res in results.items()},
        "ratios": rows,
        "busy_warnings": busy_warnings(results, "got"),
    })  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the apps in turn, round after round; print and save the comparison."""
    opts = parse_args(argv)
    apps = selected_apps(argv)
    wrk = require_wrk()
    opts = pinnable(opts)
    try:
        results = run_rounds(apps, opts, lambda spec: measure(spec, wrk, opts))
    except BenchError as exc:
        print(f"\nBENCHMARK INVALID: {exc}", file=sys.stderr)
        return 1
    rows = ratios(results)
    print_report(results, rows, opts)
    print(f"\nsaved {save_json(results, rows, opts).relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
