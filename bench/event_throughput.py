"""Event throughput: StarModel's full event path against two hand-written FastHTML routes.

One run measures, under the same uvicorn settings and the same wrk load, three apps answering
``POST /bench_counter/increment`` (increment a per-session counter, answer with one
``datastar-patch-signals`` SSE event):

* (a) StarModel: ``BenchCounter(Entity)`` with an ``@event increment``;
* (b) FastHTML + datastar-py's ``DatastarResponse(SSE.patch_signals(...))``;
* (c) FastHTML + a plain Starlette ``Response`` carrying the same SSE body.

Each app runs alone in its own uvicorn process (pinned to one core when there are two; wrk gets
the other), in rounds a, b, c, a, b, c... so that a passing burst of load elsewhere on the
machine does not hit one app only; each app's figure is the median of its rounds. Every app is
checked before it is measured, and its counter is checked again after the load, so errors
cannot pass for throughput. The server's CPU time is read from ``/proc`` too: requests per
server CPU-second is the steadier figure when other programs share the cores.

Usage::

    python bench/event_throughput.py [--duration 5] [--connections 16] [--rounds 3]

It is a benchmark, not a test: missed targets print FAIL but the exit status stays 0. Broken
answers (wrong status or body, non-2xx responses, socket errors) exit with status 1.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
LUA_SCRIPT = BENCH_DIR / "event.lua"
RESULTS_FILE = BENCH_DIR / "results" / "event_throughput.json"
HOST = "127.0.0.1"
EVENT_PATH = "/bench_counter/increment"
COOKIE_NAME = "starmodel_session"
EVENT_NAME = "datastar-patch-signals"
EVENT_HEADERS = {"Datastar-Request": "true", "Content-Type": "application/json"}
SERVER_CPU = 0
LOAD_CPU = 1
STARTUP_TIMEOUT = 20.0
_COUNT = re.compile(r'"count"\s*:\s*(\d+)')
_BENCH_JSON = re.compile(r"^BENCH_JSON (\{.*\})\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")


class BenchError(RuntimeError):
    """The benchmark cannot produce a trustworthy number (a broken answer, a dead server...)."""


@dataclass(frozen=True)
class AppSpec:
    """One contender: its letter, a label, and the factory in ``bench_apps`` that builds it."""

    key: str
    label: str
    factory: str


APPS: tuple[AppSpec, ...] = (
    AppSpec("a", "StarModel entity @event", "build_starmodel_app"),
    AppSpec("b", "FastHTML + DatastarResponse", "build_datastar_app"),
    AppSpec("c", "FastHTML + plain Response", "build_plain_app"),
)


@dataclass(frozen=True)
class Target:
    """A throughput ratio the StarModel path should reach, e.g. ``a/b >= 2.5``."""

    numerator: str
    denominator: str
    minimum: float

    @property
    def name(self) -> str:
        return f"{self.numerator}/{self.denominator}"


TARGETS: tuple[Target, ...] = (Target("a", "b", 2.5), Target("a", "c", 0.8))


@dataclass(frozen=True)
class Options:
    """Settings shared by every app of one run."""

    duration: int
    connections: int
    threads: int
    warmup: int
    rounds: int
    http: str
    loop: str
    pin: bool


@dataclass
class WrkResult:
    """What one wrk run reported."""

    requests: int
    duration_s: float
    requests_per_s: float
    non_2xx: int
    socket_errors: dict[str, int]
    latency_p50_ms: float
    latency_p99_ms: float
    latency_mean_ms: float


@dataclass
class RoundResult:
    """One measurement of one app, with the counter values that prove the work was done."""

    wrk: WrkResult
    server_cpu_s: float | None
    counter_checked: int
    counter_final: int
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
            "rounds": [{**asdict(r), "requests_per_cpu_s": r.requests_per_cpu_s}
                       for r in self.rounds],
        }  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """One HTTP answer from an app."""

    status: int
    body: str
    set_cookie: str | None


# --- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Read the command line into ``Options``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="measured seconds per app and round")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (-c)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds of load first")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds a, b, c, a, b, c...; each app's result is its median"
    )
    parser.add_argument(
        "--http", choices=("httptools", "h11"), default=_default_http(), help="uvicorn --http"
    )
    parser.add_argument(
        "--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="uvicorn --loop"
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the server and wrk to separate cores",
    )
    ns = parser.parse_args(argv)
    if min(ns.duration, ns.connections, ns.threads, ns.rounds) < 1 or ns.warmup < 0:
        parser.error("--duration, --connections, --threads, --rounds must be >= 1; --warmup >= 0")
    if ns.threads > ns.connections:
        parser.error("--threads may not exceed --connections (wrk needs a connection per thread)")
    return Options(ns.duration, ns.connections, ns.threads, ns.warmup, ns.rounds, ns.http, ns.loop, ns.pin)


def _default_http() -> str:
    """httptools when installed (uvicorn's fast parser), else h11."""
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def require_wrk() -> str:
    """The path of ``wrk``, or exit with instructions to install it."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit(
            "error: wrk is not installed; this benchmark uses it to generate load.\n"
            "Install it with:  apt-get install -y wrk   (Debian/Ubuntu package 'wrk')"
        )
    return path


def can_pin() -> bool:
    """Whether the server and the load generator can get a core each."""
    if not hasattr(os, "sched_getaffinity"):
        return False
    return {SERVER_CPU, LOAD_CPU} <= os.sched_getaffinity(0)


def pin_to(cpu: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` pinning the child (and every thread it starts) to ``cpu``."""
    if cpu is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return pin


# --- servers -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def uvicorn_command(spec: AppSpec, port: int, opts: Options) -> list[str]:
    """The uvicorn command line, identical for every app but for the factory and the port."""
    return [
        sys.executable, "-m", "uvicorn", f"bench_apps:{spec.factory}", "--factory",
        "--app-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port),
        "--workers", "1", "--no-access-log", "--log-level", "warning",
        "--http", opts.http, "--loop", opts.loop,
    ]  # fmt: skip


def start_server(spec: AppSpec, port: int, opts: Options, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start the app's uvicorn and wait until it accepts connections."""
    proc = subprocess.Popen(
        uvicorn_command(spec, port, opts),
        cwd=BENCH_DIR.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=pin_to(SERVER_CPU if opts.pin else None),  # we are single-threaded
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"({spec.key}) uvicorn exited with status {proc.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    stop_server(proc)
    raise BenchError(f"({spec.key}) uvicorn did not listen on port {port} in {STARTUP_TIMEOUT}s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Ask uvicorn to shut down (SIGTERM), killing it if it does not within 10 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (Linux ``/proc``), else ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # fields after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- correctness ---------------------------------------------------------------------------


def post_event(port: int, cookie: str | None) -> Answer:
    """Send the benchmark's event once, as the Datastar client would."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = dict(EVENT_HEADERS)
        if cookie:
            headers["Cookie"] = cookie
        conn.request("POST", EVENT_PATH, body=b"{}", headers=headers)
        resp = conn.getresponse()
        return Answer(resp.status, resp.read().decode(), resp.getheader("set-cookie"))
    finally:
        conn.close()


def session_cookie(set_cookie: str | None) -> str:
    """``starmodel_session=...`` from a Set-Cookie header, ready for a Cookie header."""
    jar: SimpleCookie = SimpleCookie()
    jar.load(set_cookie or "")
    morsel = jar.get(COOKIE_NAME)
    if morsel is None:
        raise BenchError(f"no {COOKIE_NAME} cookie in the answer (Set-Cookie: {set_cookie!r})")
    return f"{COOKIE_NAME}={morsel.coded_value}"


def counter_of(answer: Answer, key: str) -> int:
    """The counter value in a correct answer; raise if the answer is not one."""
    if answer.status != 200:
        raise BenchError(f"({key}) status {answer.status}, expected 200: {answer.body[:200]!r}")
    if EVENT_NAME not in answer.body:
        raise BenchError(f"({key}) no {EVENT_NAME} event in the answer: {answer.body[:200]!r}")
    match = _COUNT.search(answer.body)
    if match is None:
        raise BenchError(f"({key}) no counter value in the answer: {answer.body[:200]!r}")
    return int(match.group(1))


def verify_app(key: str, port: int) -> tuple[str, int]:
    """Check the app's answer (200, the SSE event, a counter that increases within a session).

    Returns the session cookie to load the app with and the counter value it has reached.
    """
    first = post_event(port, None)
    before = counter_of(first, key)
    cookie = session_cookie(first.set_cookie)
    after = counter_of(post_event(port, cookie), key)
    if after <= before:
        raise BenchError(f"({key}) the counter did not increase: {before} then {after}")
    return cookie, after


# --- load ----------------------------------------------------------------------------------


def wrk_command(wrk: str, port: int, cookie: str, seconds: int, opts: Options) -> list[str]:
    """wrk's command line; the Lua script makes every request the event POST."""
    return [
        wrk, f"-t{opts.threads}", f"-c{opts.connections}", f"-d{seconds}s",
        "-s", str(LUA_SCRIPT), f"http://{HOST}:{port}", "--", EVENT_PATH, cookie,
    ]  # fmt: skip


def run_wrk(wrk: str, port: int, cookie: str, seconds: int, opts: Options) -> WrkResult:
    """Run wrk against the app and parse its report."""
    proc = subprocess.run(
        wrk_command(wrk, port, cookie, seconds, opts),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
        preexec_fn=pin_to(LOAD_CPU if opts.pin else None),  # we are single-threaded
    )
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return parse_wrk(proc.stdout)


def parse_wrk(output: str) -> WrkResult:
    """Read the ``BENCH_JSON`` line of ``event.lua`` and wrk's own error lines."""
    match = _BENCH_JSON.search(output)
    if match is None:
        raise BenchError(f"wrk printed no BENCH_JSON line (is event.lua intact?):\n{output}")
    raw: dict[str, Any] = json.loads(match.group(1))
    non_2xx = _NON_2XX.search(output)
    errors = {k: int(raw[f"{k}_errors"]) for k in ("connect", "read", "write")}
    errors["timeout"] = int(raw["timeouts"])
    duration_s = raw["duration_us"] / 1e6
    return WrkResult(
        requests=int(raw["requests"]),
        duration_s=round(duration_s, 3),
        requests_per_s=round(raw["requests"] / duration_s, 1),
        non_2xx=max(int(non_2xx.group(1)) if non_2xx else 0, int(raw["status_errors"])),
        socket_errors=errors,
        latency_p50_ms=raw["latency_p50_us"] / 1000,
        latency_p99_ms=raw["latency_p99_us"] / 1000,
        latency_mean_ms=round(raw["latency_mean_us"] / 1000, 3),
    )


def check_load(key: str, phase: str, result: WrkResult) -> None:
    """Refuse a run that saw error answers or broken connections."""
    if result.non_2xx:
        raise BenchError(
            f"({key}) {phase}: {result.non_2xx} non-2xx/3xx responses out of "
            f"{result.requests}; the app is answering errors, not events"
        )
    broken = {k: v for k, v in result.socket_errors.items() if v}
    if broken:
        raise BenchError(f"({key}) {phase}: socket errors {broken}")
    if result.requests == 0:
        raise BenchError(f"({key}) {phase}: wrk completed no request")


def check_counter(key: str, checked: int, final: int, sent: int) -> None:
    """The counter must have moved by at least every request wrk saw completed (plus ours)."""
    if final - checked < sent + 1:
        raise BenchError(
            f"({key}) the counter went from {checked} to {final}, but {sent + 1} "
            "increments were answered: the app did not do the work it reported"
        )


# --- one app -------------------------------------------------------------------------------


def measure_app(spec: AppSpec, wrk: str, opts: Options) -> RoundResult:
    """Start the app alone, check it, warm it up, measure it, check it again, stop it."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = start_server(spec, port, opts, log)
        try:
            return _load_app(spec, proc.pid, port, wrk, opts)
        except BenchError:
            stop_server(proc)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])
            raise
        finally:
            stop_server(proc)


def _load_app(spec: AppSpec, pid: int, port: int, wrk: str, opts: Options) -> RoundResult:
    """Verification, warm-up, measurement and the final counter check of a running app."""
    cookie, checked = verify_app(spec.key, port)
    sent = 0
    if opts.warmup:
        warm = run_wrk(wrk, port, cookie, opts.warmup, opts)
        check_load(spec.key, "warm-up", warm)
        sent += warm.requests
    cpu_before = cpu_seconds(pid)
    result = run_wrk(wrk, port, cookie, opts.duration, opts)
    cpu_after = cpu_seconds(pid)
    check_load(spec.key, "measurement", result)
    sent += result.requests
    final = counter_of(post_event(port, cookie), spec.key)
    check_counter(spec.key, checked, final, sent)
    cpu = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2)
    return RoundResult(result, cpu, checked, final, sent)


# --- report --------------------------------------------------------------------------------


def _ratio(num: float | None, den: float | None) -> float | None:
    return round(num / den, 3) if num is not None and den else None


def ratios(results: dict[str, AppResult]) -> list[dict[str, Any]]:
    """Each target's ratio of median requests/s, whether it is met, and the CPU-time ratio."""
    rows = []
    for target in TARGETS:
        num, den = results[target.numerator], results[target.denominator]
        value = _ratio(num.requests_per_s, den.requests_per_s) or 0.0
        rows.append({
            "ratio": target.name,
            "value": value,
            "target": f">= {target.minimum}",
            "passed": value >= target.minimum,
            "per_server_cpu_s": _ratio(num.requests_per_cpu_s, den.requests_per_cpu_s),
        })  # fmt: skip
    return rows


def busy_warnings(results: dict[str, AppResult]) -> list[str]:
    """Rounds whose server got less than 90% of a core: something else was using the CPUs."""
    found = []
    for res in results.values():
        for n, rnd in enumerate(res.rounds, 1):
            if rnd.server_cpu_s is not None and rnd.server_cpu_s < 0.9 * rnd.wrk.duration_s:
                share = rnd.server_cpu_s / rnd.wrk.duration_s
                found.append(f"({res.key}) round {n}: the server got {share:.0%} of a core")
    return found


def print_report(results: dict[str, AppResult], rows: list[dict[str, Any]], opts: Options) -> None:
    """The table of requests/s and the ratios against their targets."""
    print(
        f"\nEvent throughput  (wrk -t{opts.threads} -c{opts.connections} -d{opts.duration}s "
        f"x {opts.rounds} rounds, uvicorn 1 worker, --http {opts.http} --loop {opts.loop}, "
        f"pinned: {'yes' if opts.pin else 'no'}; medians)"
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
    print()
    for row in rows:
        verdict = "PASS" if row["passed"] else "FAIL"
        cpu = row["per_server_cpu_s"]
        print(
            f"{row['ratio']} = {row['value']:.2f}   target {row['target']:<7} {verdict}"
            f"   (per server CPU-second: {cpu if cpu is not None else '-'})"
        )
    for warning in busy_warnings(results):
        print(
            f"warning: {warning}; the machine was busy, req/s is understated "
            "(req/cpu-s is the steadier figure)"
        )


def versions() -> dict[str, str]:
    """Versions of what is being measured, for the JSON record."""
    found = {"python": platform.python_version()}
    for dist in (
        "starmodel",
        "python-fasthtml",
        "starlette",
        "datastar-py",
        "uvicorn",
        "httptools",
        "uvloop",
        "pydantic",
    ):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    found["wrk"] = (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else "?"
    return found


def _loadavg() -> str | None:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return None


def save_json(results: dict[str, AppResult], rows: list[dict[str, Any]], opts: Options) -> Path:
    """Write the run to ``bench/results/event_throughput.json``."""
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    record = {
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
        "busy_warnings": busy_warnings(results),
    }
    RESULTS_FILE.write_text(json.dumps(record, indent=2) + "\n")
    return RESULTS_FILE


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the three apps in turn, round after round; print and save the comparison."""
    opts = parse_args(argv)
    wrk = require_wrk()
    if opts.pin and not can_pin():
        print("note: fewer than two usable cores; server and wrk are not pinned", file=sys.stderr)
        opts = Options(**{**asdict(opts), "pin": False})
    results = {spec.key: AppResult(spec.key, spec.label, spec.factory) for spec in APPS}
    try:
        for n in range(1, opts.rounds + 1):
            for spec in APPS:
                print(
                    f"round {n}/{opts.rounds} ({spec.key}) {spec.label}: check, "
                    f"warm up {opts.warmup}s, measure {opts.duration}s",
                    end="",
                    flush=True,
                )
                rnd = measure_app(spec, wrk, opts)
                results[spec.key].rounds.append(rnd)
                print(f"  -> {rnd.wrk.requests_per_s:.0f} req/s", flush=True)
    except BenchError as exc:
        print(f"\nBENCHMARK INVALID: {exc}", file=sys.stderr)
        return 1
    rows = ratios(results)
    print_report(results, rows, opts)
    print(f"\nsaved {save_json(results, rows, opts).relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
