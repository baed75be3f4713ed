"""Cold start: ``starmodel run demo`` to its first 200 on ``/``, against a bare FastHTML app
served by uvicorn, measured in the same run.

Each run starts, one after the other (the order turns from run to run):

* (a) ``python -m starmodel.cli.main run demo --port P`` (what the ``starmodel`` command runs),
  with a fresh, empty SQLite file as its database: the demo creates its tables and seeds them,
  as on a fresh clone;
* (b) ``python -m uvicorn cold_apps:app --port P``: a FastHTML app of one page (the floor:
  the interpreter, FastHTML, Starlette and uvicorn);
* (i) ``python -c "import fasthtml.common"``: the interpreter and FastHTML's import alone.

and takes the wall-clock time from the process's start to the first 200 answer on ``/`` (to
its exit for (i)), and the CPU time the process had used by then (``/proc``: the time it
needed whatever else runs on the machine). The page assets must be there (``starmodel
assets``, or ``STARMODEL_ASSETS_DIR``): fetching them is a one-time download, not a start.

Usage::

    python bench/cold_start.py [--runs 10]

Target (printed with PASS/FAIL): the median of (a) under 1 s, wall clock; the max and the
ratios to (b) are printed beside it. A benchmark, not a test: the exit status is 1 only when
a server did not answer.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH_DIR, HOST, BenchError, cpu_seconds, free_port, stop_server, versions, write_json

RESULTS_FILE = BENCH_DIR / "results" / "cold_start.json"
TARGET_S = 1.0
TIMEOUT_S = 60.0
POLL_S = 0.005


@dataclass
class Contender:
    """One way of starting: its letter, label and the command (``{port}`` filled in)."""

    key: str
    label: str
    command: list[str]
    serves: bool = True
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "command": " ".join(self.command),
            "wall_s_median": statistics.median(self.wall),
            "wall_s_max": max(self.wall),
            "cpu_s_median": statistics.median(self.cpu) if self.cpu else None,
            "wall_s_all": self.wall,
            "cpu_s_all": self.cpu,
        }


def contenders() -> list[Contender]:
    python = sys.executable
    return [
        Contender("a", "starmodel run demo", [
            python, "-m", "starmodel.cli.main", "run", "demo", "--port", "{port}",
        ]),
        Contender("b", "uvicorn + FastHTML hello app", [
            python, "-m", "uvicorn", "cold_apps:app", "--app-dir", str(BENCH_DIR), "--host", HOST,
            "--port", "{port}", "--log-level", "warning",
        ]),
        Contender(
            "i", 'python -c "import fasthtml.common"', [python, "-c", "import fasthtml.common"], serves=False
        ),
    ]  # fmt: skip


def first_ok(port: int) -> bool:
    """Whether ``GET /`` answers 200 now."""
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise BenchError(f"GET / answered {resp.status}")
        return True
    except OSError:
        return False
    finally:
        conn.close()


def start_once(who: Contender, env: dict[str, str]) -> tuple[float, float | None]:
    """Start ``who`` once: seconds to its first 200 (or to its exit), and its CPU seconds."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in who.command]
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=BENCH_DIR.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            if not who.serves:
                before_exit = _cpu_at_exit(proc)
                return time.perf_counter() - started, before_exit
            while not first_ok(port):
                if proc.poll() is not None or time.perf_counter() - started > TIMEOUT_S:
                    log.seek(0)
                    sys.stderr.write(log.read().decode(errors="replace")[-3000:])
                    raise BenchError(f"({who.key}) no 200 on / (exit status {proc.returncode})")
                time.sleep(POLL_S)
            elapsed = time.perf_counter() - started
            return elapsed, cpu_seconds(proc.pid)
        finally:
            stop_server(proc)


def _cpu_at_exit(proc: subprocess.Popen[bytes]) -> float | None:
    """CPU seconds of a child that runs to its end (``wait4``'s resource usage)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise BenchError(f"{proc.args!r} exited with status {proc.returncode}")
    return usage.ru_utime + usage.ru_stime


def run(runs: int) -> list[Contender]:
    """Every contender once per run, the order turning, each on a fresh demo database."""
    who = contenders()
    for n in range(runs):
        order = who[n % len(who):] + who[: n % len(who)]
        line = []
        for each in order:
            with tempfile.TemporaryDirectory(prefix="starmodel-cold-") as folder:
                env = {**os.environ, "DATABASE_URL": f"sqlite:///{folder}/demo.db"}
                wall, cpu = start_once(each, env)
            each.wall.append(wall)
            if cpu is not None:
                each.cpu.append(cpu)
            line.append(f"{each.key} {wall:.2f}s")
        print(f"run {n + 1}/{runs}: " + ", ".join(line), flush=True)
    return who


def report(who: list[Contender]) -> dict[str, Any]:
    """Print the table, the ratios and the target; return the JSON record."""
    by_key = {c.key: c for c in who}
    print(f"\n{'':4}{'what':38}{'median s':>10}{'max s':>8}{'cpu s':>8}")
    for c in who:
        cpu = f"{statistics.median(c.cpu):.2f}" if c.cpu else "-"
        print(f"({c.key}) {c.label:38}{statistics.median(c.wall):10.2f}{max(c.wall):8.2f}{cpu:>8}")
    a, b = by_key["a"], by_key["b"]
    wall_ratio = statistics.median(a.wall) / statistics.median(b.wall)
    cpu_ratio = statistics.median(a.cpu) / statistics.median(b.cpu) if a.cpu and b.cpu else None
    met = statistics.median(a.wall) < TARGET_S
    print(f"\na/b wall {wall_ratio:.2f}x" + (f", cpu {cpu_ratio:.2f}x" if cpu_ratio else ""))
    print(
        f"(a) median {statistics.median(a.wall):.2f} s, max {max(a.wall):.2f} s  "
        f"target median < {TARGET_S:g} s  {'PASS' if met else 'FAIL'}"
    )
    return {
        "benchmark": "cold_start",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_after": Path("/proc/loadavg").read_text().strip(),
        "cpus": os.cpu_count(),
        "versions": versions(),
        "contenders": {c.key: c.summary() for c in who},
        "a_over_b_wall": wall_ratio,
        "a_over_b_cpu": cpu_ratio,
        "target_s": TARGET_S,
        "pass": met,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="starts of each contender")
    ns = parser.parse_args(argv)
    if ns.runs < 1:
        parser.error("--runs must be >= 1")
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    try:
        who = run(ns.runs)
    except BenchError as exc:
        print(f"\nBENCHMARK INVALID: {exc}", file=sys.stderr)
        return 1
    record = report(who)
    print(f"load average after: {record['loadavg_after']}")
    print(f"\nsaved {write_json(RESULTS_FILE, record).relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
