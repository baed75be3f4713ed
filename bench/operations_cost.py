"""What metrics and tracing cost: events/s of one StarModel app with each turned on, against
the same app with both off, measured in the same run.

* (a) StarModel ``BenchCounter`` (as in ``event_throughput.py``), metrics and tracing off;
* (m) the same with ``metrics=True`` (Prometheus counters and histogram per event, the live
  stream gauge, bus counters);
* (t) the same with ``tracing=True``: the OpenTelemetry SDK records a request span, an event
  span and its four parts (load, body, commit, publish) per event, exported in batches to an
  exporter that drops them.

Same load, checks and rounds as ``event_throughput.py`` (whose measuring code this reuses);
targets: ``m/a >= 0.95`` (metrics cost at most 5 % of the events/s). Tracing has no target:
its figure is printed for the docs.

Usage::

    python bench/operations_cost.py [--duration 5] [--connections 16] [--rounds 3]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from event_throughput import measure, parse_args  # siblings, not a package
from harness import (
    BENCH_DIR,
    AppResult,
    AppSpec,
    BenchError,
    busy_warnings,
    pinnable,
    print_ratio,
    print_table,
    ratio_row,
    require_wrk,
    run_rounds,
    versions,
    write_json,
)

RESULTS_FILE = BENCH_DIR / "results" / "operations_cost.json"
APPS: tuple[AppSpec, ...] = (
    AppSpec("a", "StarModel, metrics and tracing off", "build_starmodel_app"),
    AppSpec("m", "StarModel, metrics on", "build_starmodel_metrics_app"),
    AppSpec("t", "StarModel, tracing on (SDK)", "build_starmodel_tracing_app"),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the three apps in turn, round after round; print and save the ratios."""
    opts = parse_args(argv)
    wrk = require_wrk()
    opts = pinnable(opts)
    try:
        results = run_rounds(APPS, opts, lambda spec: measure(spec, wrk, opts))
    except BenchError as exc:
        print(f"\nBENCHMARK INVALID: {exc}", file=sys.stderr)
        return 1
    rows = [ratio_row("m/a", results["m"], results["a"], 0.95),
            ratio_row("t/a", results["t"], results["a"], 0.0)]
    print(f"\nOperations cost  (wrk -t{opts.threads} -c{opts.connections} -d{opts.duration}s "
          f"x {opts.rounds} rounds, uvicorn 1 worker; medians)")
    print_table(results)
    print()
    for row in rows:
        print_ratio(row)
    for warning in busy_warnings(results, "got"):
        print(f"warning: {warning}; req/cpu-s is the steadier figure")
    print(f"\nsaved {save(results, rows, opts).relative_to(BENCH_DIR.parent)}")
    return 0


def save(results: dict[str, AppResult], rows: list[dict[str, Any]], opts: Any) -> Path:
    return write_json(RESULTS_FILE, {
        "benchmark": "operations_cost",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "apps": {key: res.summary() for key, res in results.items()},
        "ratios": rows,
        "busy_warnings": busy_warnings(results, "got"),
    })  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
