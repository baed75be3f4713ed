"""Fuzz fixtures: the demo served in this process, the log records it writes, and the tally of
requests sent and 5xx answers seen (printed at the end of the run)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_under_test import TALLIES, DemoUnderTest, LogRecords


@pytest.fixture(scope="module")
def server_log() -> Iterator[LogRecords]:
    handler = LogRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, server_log: LogRecords) -> Iterator[DemoUnderTest]:
    """The demo, started once for the module (hypothesis runs many examples against it)."""
    app = DemoUnderTest(Path(tmp_path_factory.mktemp("fuzz-demo")))
    app.start()
    try:
        yield app
    finally:
        app.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLIES:
        terminalreporter.section("fuzz")
        for name, counted in TALLIES.items():
            terminalreporter.write_line(counted.line(name))
