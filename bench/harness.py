"""What ``event_throughput.py`` and ``sql_throughput.py`` share: the uvicorn servers, pinning,
wrk runs and their checks, server CPU time, the rounds, and the result table.

A sibling file, not a package: the benchmarks put ``bench/`` on ``sys.path``.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from http.cookies import SimpleCookie
from pathlib import Path
from typing import IO, Any, TypeVar

BENCH_DIR = Path(__file__).resolve().parent
LUA_SCRIPT = BENCH_DIR / "event.lua"
HOST = "127.0.0.1"
COOKIE_NAME = "starmodel_session"
EVENT_NAME = "datastar-patch-signals"
EVENT_HEADERS = {"Datastar-Request": "true", "Content-Type": "application/json"}
SERVER_CPU = 0
LOAD_CPU = 1
STARTUP_TIMEOUT = 20.0
_BENCH_JSON = re.compile(r"^BENCH_JSON (\{.*\})\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")


class BenchError(RuntimeError):
    """The benchmark cannot produce a trustworthy number (a broken answer, a dead server...)."""


@dataclass(frozen=True)
class AppSpec:
    """One contender: its letter, a label, the factory of the bench apps module that builds
    it, and the ASGI server that serves it (``uvicorn`` or ``granian``)."""

    key: str
    label: str
    factory: str
    server: str = "uvicorn"


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
class Round:
    """One measurement of one app; each benchmark adds the values that prove the work was done."""

    wrk: WrkResult
    server_cpu_s: float | None

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
    rounds: list[Round] = field(default_factory=list)

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


def add_load_arguments(
    parser: argparse.ArgumentParser, *, rounds_help: str, http_default: str, no_pin_help: str
) -> None:
    """The options every throughput benchmark has: wrk's load, the rounds, uvicorn, pinning."""
    parser.add_argument("--duration", type=int, default=5, help="measured seconds per app and round")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (-c)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds of load first")
    parser.add_argument("--rounds", type=int, default=3, help=rounds_help)
    parser.add_argument("--http", choices=("httptools", "h11"), default=http_default, help="uvicorn --http")
    parser.add_argument(
        "--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="uvicorn --loop"
    )
    parser.add_argument("--no-pin", dest="pin", action="store_false", help=no_pin_help)


def check_load_arguments(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> None:
    """Refuse load options wrk cannot run with."""
    if min(ns.duration, ns.connections, ns.threads, ns.rounds) < 1 or ns.warmup < 0:
        parser.error("--duration, --connections, --threads, --rounds must be >= 1; --warmup >= 0")
    if ns.threads > ns.connections:
        parser.error("--threads may not exceed --connections (wrk needs a connection per thread)")


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


OptionsT = TypeVar("OptionsT", bound=Options)


def pinnable(opts: OptionsT) -> OptionsT:
    """``opts``, unpinned (with a note) when there are not two cores to pin to."""
    if opts.pin and not can_pin():
        print("note: fewer than two usable cores; server and wrk are not pinned", file=sys.stderr)
        return replace(opts, pin=False)
    return opts


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


def uvicorn_command(module: str, spec: AppSpec, port: int, opts: Options) -> list[str]:
    """The uvicorn command line, identical for every app but for the factory and the port."""
    return [
        sys.executable, "-m", "uvicorn", f"{module}:{spec.factory}", "--factory",
        "--app-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port),
        "--workers", "1", "--no-access-log", "--log-level", "warning",
        "--http", opts.http, "--loop", opts.loop,
    ]  # fmt: skip


def granian_command(module: str, spec: AppSpec, port: int, opts: Options) -> list[str]:
    """The granian command line: one worker (granian's own process supervises it), HTTP/1.1,
    no access log, like the uvicorn one."""
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory", f"{module}:{spec.factory}",
        "--working-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port),
        "--workers", "1", "--log-level", "warning", "--http", "1",
        "--loop", "uvloop" if opts.loop == "auto" and _has("uvloop") else opts.loop,
    ]  # fmt: skip


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def start_server(
    module: str,
    spec: AppSpec,
    port: int,
    opts: Options,
    log: IO[bytes],
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the app's server and wait until it accepts connections."""
    command = granian_command if spec.server == "granian" else uvicorn_command
    proc = subprocess.Popen(
        command(module, spec, port, opts),
        cwd=BENCH_DIR.parent,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=pin_to(SERVER_CPU if opts.pin else None),  # we are single-threaded
    )
    return wait_listening(proc, port, STARTUP_TIMEOUT, f"({spec.key}) {spec.server}")


def wait_listening(
    proc: subprocess.Popen[bytes], port: int, timeout: float, what: str
) -> subprocess.Popen[bytes]:
    """Wait until the server ``proc`` accepts connections on ``port``; stop it and raise
    ``BenchError`` if it exits or does not listen within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    stop_server(proc)
    raise BenchError(f"{what} did not listen on port {port} in {timeout}s")


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
    """User + system CPU time a process and its live child processes (a server's workers)
    have used so far (Linux ``/proc``), else ``None``."""
    stats = _proc_stats()
    if pid not in stats:
        return None
    family, found = {pid}, True
    while found:
        found = False
        for child, (parent, _) in stats.items():
            if parent in family and child not in family:
                family.add(child)
                found = True
    return sum(stats[member][1] for member in family) / os.sysconf("SC_CLK_TCK")


def _proc_stats() -> dict[int, tuple[int, int]]:
    """``pid -> (parent pid, user + system clock ticks)`` of every process."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # fields after "pid (comm) "
        stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return stats


RoundT = TypeVar("RoundT", bound=Round)


def measure_app(
    spec: AppSpec,
    start: Callable[[int, IO[bytes]], subprocess.Popen[bytes]],
    load: Callable[[int, int], RoundT],
) -> RoundT:
    """Start the app alone (``start(port, log)``), run ``load(pid, port)`` on it, stop it; on a
    ``BenchError`` print the end of the server's log."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = start(port, log)
        try:
            return load(proc.pid, port)
        except BenchError:
            stop_server(proc)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])
            raise
        finally:
            stop_server(proc)


def run_rounds(
    apps: Sequence[AppSpec], opts: Options, measure: Callable[[AppSpec], Round]
) -> dict[str, AppResult]:
    """Every app in turn, round after round, with a progress line each."""
    results = {spec.key: AppResult(spec.key, spec.label, spec.factory) for spec in apps}
    for n in range(1, opts.rounds + 1):
        for spec in apps:
            print(
                f"round {n}/{opts.rounds} ({spec.key}) {spec.label}: check, "
                f"warm up {opts.warmup}s, measure {opts.duration}s",
                end="",
                flush=True,
            )
            rnd = measure(spec)
            results[spec.key].rounds.append(rnd)
            print(f"  -> {rnd.wrk.requests_per_s:.0f} req/s", flush=True)
    return results


# --- correctness ---------------------------------------------------------------------------


def post_event(port: int, url: str, cookie: str | None) -> Answer:
    """Send the benchmark's event to ``url`` once, as the Datastar client would."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = dict(EVENT_HEADERS)
        if cookie:
            headers["Cookie"] = cookie
        conn.request("POST", url, body=b"{}", headers=headers)
        resp = conn.getresponse()
        return Answer(resp.status, resp.read().decode(), resp.getheader("set-cookie"))
    finally:
        conn.close()


def find_session_cookie(set_cookie: str | None) -> str | None:
    """``starmodel_session=...`` from a Set-Cookie header, ready for a Cookie header; ``None``
    when the answer set none."""
    jar: SimpleCookie = SimpleCookie()
    jar.load(set_cookie or "")
    morsel = jar.get(COOKIE_NAME)
    return f"{COOKIE_NAME}={morsel.coded_value}" if morsel is not None else None


def value_in(answer: Answer, key: str, pattern: re.Pattern[str], what: str, status_chars: int) -> int:
    """The value ``pattern`` finds in a correct answer; raise if the answer is not one."""
    if answer.status != 200:
        raise BenchError(f"({key}) status {answer.status}, expected 200: {answer.body[:status_chars]!r}")
    if EVENT_NAME not in answer.body:
        raise BenchError(f"({key}) no {EVENT_NAME} event in the answer: {answer.body[:200]!r}")
    match = pattern.search(answer.body)
    if match is None:
        raise BenchError(f"({key}) no {what} in the answer: {answer.body[:200]!r}")
    return int(match.group(1))


# --- load ----------------------------------------------------------------------------------


def wrk_command(wrk: str, port: int, url: str, cookie: str | None, seconds: int, opts: Options) -> list[str]:
    """wrk's command line; the Lua script makes every request the event POST."""
    return [
        wrk, f"-t{opts.threads}", f"-c{opts.connections}", f"-d{seconds}s",
        "-s", str(LUA_SCRIPT), f"http://{HOST}:{port}", "--", url, *([cookie] if cookie else []),
    ]  # fmt: skip


def run_wrk(wrk: str, port: int, url: str, cookie: str | None, seconds: int, opts: Options) -> WrkResult:
    """Run wrk with ``event.lua`` (POST, Datastar headers, body, cookie) and parse its report."""
    proc = subprocess.run(
        wrk_command(wrk, port, url, cookie, seconds, opts),
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


@dataclass
class Load:
    """What ``load_and_measure`` did: the measured run, the server CPU time it took, and the
    requests wrk completed over warm-up and measurement (in ``runs`` wrk runs)."""

    result: WrkResult
    cpu_s: float | None
    sent: int
    runs: int


def load_and_measure(
    key: str, pid: int, opts: Options, run: Callable[[int], WrkResult]
) -> Load:
    """The warm-up (if any) and the measured run (``run(seconds)``), both checked, with the
    server's CPU time over the measurement."""
    sent, runs = 0, 0
    if opts.warmup:
        warm = run(opts.warmup)
        check_load(key, "warm-up", warm)
        sent, runs = sent + warm.requests, runs + 1
    cpu_before = cpu_seconds(pid)
    result = run(opts.duration)
    cpu_after = cpu_seconds(pid)
    check_load(key, "measurement", result)
    sent, runs = sent + result.requests, runs + 1
    cpu = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2)
    return Load(result, cpu, sent, runs)


# --- report --------------------------------------------------------------------------------


def ratio_of(num: float | None, den: float | None) -> float | None:
    return round(num / den, 3) if num is not None and den else None


def ratio_row(name: str, num: AppResult, den: AppResult, minimum: float) -> dict[str, Any]:
    """One target's ratio of median requests/s, whether it is met, and the CPU-time ratio."""
    value = ratio_of(num.requests_per_s, den.requests_per_s) or 0.0
    return {
        "ratio": name,
        "value": value,
        "target": f">= {minimum}",
        "passed": value >= minimum,
        "per_server_cpu_s": ratio_of(num.requests_per_cpu_s, den.requests_per_cpu_s),
    }


def busy_warnings(results: dict[str, AppResult], verb: str) -> list[str]:
    """Rounds whose server ``verb`` (got, used) less than 90% of a core."""
    found = []
    for res in results.values():
        for n, rnd in enumerate(res.rounds, 1):
            if rnd.server_cpu_s is not None and rnd.server_cpu_s < 0.9 * rnd.wrk.duration_s:
                share = rnd.server_cpu_s / rnd.wrk.duration_s
                found.append(f"({res.key}) round {n}: the server {verb} {share:.0%} of a core")
    return found


def print_table(results: dict[str, AppResult]) -> None:
    """Requests/s (median, min, max), per server CPU-second, and latencies of every app."""
    print(f"{'':3}{'app':<30}{'req/s':>9}{'min':>8}{'max':>8}{'req/cpu-s':>11}{'p50 ms':>8}{'p99 ms':>8}")
    for res in results.values():
        rps = [r.wrk.requests_per_s for r in res.rounds]
        per_cpu = res.requests_per_cpu_s
        print(
            f"{res.key:<3}{res.label:<30}{res.requests_per_s:>9.0f}{min(rps):>8.0f}"
            f"{max(rps):>8.0f}{(f'{per_cpu:.0f}' if per_cpu else '-'):>11}"
            f"{res.latency_p50_ms:>8.2f}{res.latency_p99_ms:>8.2f}"
        )


def print_ratio(row: dict[str, Any], prefix: str = "") -> None:
    """One ratio against its target, PASS or FAIL."""
    verdict = "PASS" if row["passed"] else "FAIL"
    cpu = row["per_server_cpu_s"]
    print(
        f"{prefix}{row['ratio']} = {row['value']:.2f}   target {row['target']:<7} {verdict}"
        f"   (per server CPU-second: {cpu if cpu is not None else '-'})"
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


def write_json(path: Path, record: dict[str, Any]) -> Path:
    """Write one run's record to ``path`` (under ``bench/results/``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
