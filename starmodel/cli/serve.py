"""The server processes of ``starmodel run``: uvicorn with a clean stop, and a supervisor for
``--workers N`` that always ends what it started.

Each process (the only one, or each worker) runs ``StarModelServer``: at SIGTERM or SIGINT
it stops accepting connections and begins the app's clean stop at once (live streams told
to reconnect elsewhere, background runs given the grace period), rather than waiting for
open streams to time out.

``Supervisor`` replaces uvicorn's own: uvicorn's kills a worker that has not answered a
health ping within 5 s and starts another (a worker still importing the app on a busy
machine is killed like that, over and over), and at stop it joins its workers without a
bound, deaf to further signals, so one worker that does not end keeps it running for ever.
This one restarts a worker only when it has exited, gives the workers the grace period plus
a margin to stop, kills those still running then (a second SIGINT, Ctrl-C twice, kills them
at once), and says which it killed.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.context import SpawnProcess
from socket import socket
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from starmodel.adapters.driving.web.shutdown import CANCEL_WAIT, begin_stop_everywhere

__all__ = ["StarModelServer", "Supervisor"]

log = logging.getLogger("uvicorn.error")
STOP_MARGIN = 5.0
"""Seconds a worker gets to close its stores and exit after the grace period and the
cancelled runs' wait (``CANCEL_WAIT``) are over, before it is killed."""
QUICK_EXIT = 5.0
"""A worker that exits within this many seconds of its start is not restarted: the app
cannot start, and would not the next time either."""
_spawn = multiprocessing.get_context("spawn")
multiprocessing.allow_connection_pickling()  # the listening socket goes to each worker


class StarModelServer(uvicorn.Server):
    """Uvicorn that begins the app's clean stop as soon as the stop signal arrives (uvicorn
    itself waits for open connections first, and live streams never end by themselves)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        begin_stop_everywhere()
        super().handle_exit(sig, frame)


def _serve_worker(config: uvicorn.Config, sockets: list[socket]) -> None:
    """A worker process: its own logging, then the server on the shared socket."""
    config.configure_logging()
    with contextlib.suppress(KeyboardInterrupt):  # a second SIGINT: no traceback
        StarModelServer(config).run(sockets=sockets)


class Supervisor:
    """Runs ``config.workers`` server processes on shared sockets until SIGTERM or SIGINT.

    Args:
        config: the uvicorn configuration each worker serves (the app as an import string).
        sockets: the bound listening sockets, shared by the workers.
        grace: the app's shutdown grace period (``Settings.shutdown_grace``).
    """

    def __init__(self, config: uvicorn.Config, sockets: list[socket], *, grace: float) -> None:
        self.config = config
        self.sockets = sockets
        self.stop_within = grace + CANCEL_WAIT + STOP_MARGIN
        self.workers: list[SpawnProcess] = []
        self.started: dict[SpawnProcess, float] = {}  # worker -> time.monotonic() of its start
        self.signals = 0
        self.interrupts = 0  # SIGINTs
        self.wake = threading.Event()
        self.exit_code = 0

    def run(self) -> int:
        """Serve until asked to stop; the exit code (non-zero if a worker failed to start,
        or had to be killed)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        log.info("Started parent process [%d]", os.getpid())
        self.workers = [self._start() for _ in range(self.config.workers)]
        while not self.signals:
            self.wake.wait(0.5)
            if not self.signals:
                self._replace_exited()
        self._stop_all()
        log.info("Stopping parent process [%d]", os.getpid())
        return self.exit_code

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.signals += 1
        self.interrupts += sig == signal.SIGINT
        self.wake.set()

    def _start(self) -> SpawnProcess:
        worker = _spawn.Process(target=_serve_worker, args=(self.config, self.sockets))
        worker.start()
        self.started[worker] = time.monotonic()
        return worker

    def _replace_exited(self) -> None:
        for index, worker in enumerate(self.workers):
            if worker.is_alive():
                continue
            worker.join()
            lived = time.monotonic() - self.started.pop(worker, 0.0)
            if worker.exitcode == STARTUP_FAILURE or lived < QUICK_EXIT:  # it would again
                log.error("Child process [%s] failed to start (code %s); stopping",
                          worker.pid, worker.exitcode)
                self.exit_code = STARTUP_FAILURE
                self.signals += 1
                return
            log.warning("Child process [%s] exited (code %s); starting another", worker.pid, worker.exitcode)
            self.workers[index] = self._start()

    def _stop_all(self) -> None:
        """SIGTERM to every worker; those still running after ``stop_within`` seconds (or at a
        second SIGINT) are killed. The supervisor's copy of the listening sockets is closed
        first: once the workers have closed theirs, new connections are refused (a proxy then
        tries another process) instead of waiting in a backlog nobody reads."""
        for sock in self.sockets:
            sock.close()
        for worker in self.workers:
            if worker.pid is not None and worker.exitcode is None:
                os.kill(worker.pid, signal.SIGTERM)
        asked = max(1, self.interrupts)
        deadline = time.monotonic() + self.stop_within
        while any(w.is_alive() for w in self.workers):
            if self.interrupts > asked or time.monotonic() > deadline:
                break
            self.wake.clear()
            self.wake.wait(0.05)
        for worker in self.workers:
            if worker.is_alive():
                late = f"not stopped after {self.stop_within:g} s"
                log.error("Child process [%s] killed (%s)", worker.pid,
                          "a second SIGINT" if self.interrupts > asked else late)
                worker.kill()
                self.exit_code = self.exit_code or 1
            worker.join()
