"""What ``starmodel run`` needs besides uvicorn: granian as the server, the metrics folder
shared by worker processes, and JSON logs for the server's own lines."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from starlette.types import ASGIApp, Receive, Scope, Send

from starmodel.adapters.driving.web.shutdown import begin_stop_everywhere

__all__ = ["SERVERS", "granian_app", "metrics_across_workers", "serve_with_granian"]

SERVERS = ("uvicorn", "granian")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
GRANIAN_TARGET_ENV = "STARMODEL_GRANIAN_TARGET"


@contextlib.contextmanager
def metrics_across_workers(enabled: bool) -> Iterator[None]:
    """With metrics on and several worker processes: a fresh folder where each worker writes
    its figures (``PROMETHEUS_MULTIPROC_DIR``), so any worker answers with the sum; removed
    when the server stops. A folder already named in the environment is used as it is."""
    if not enabled or os.environ.get(MULTIPROC_ENV):
        yield
        return
    folder = tempfile.mkdtemp(prefix="starmodel-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def serve_with_granian(
    import_string: str,
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    log_config: dict[str, Any] | None,
    access_log: bool = False,
) -> None:
    """Serve the app's ASGI callable with granian (``pip install 'starmodel[granian]'``).

    Each worker is a fresh process that imports the app (``spawn``): nothing opened by the
    checks made before serving (connections, event loops) is shared with a worker.
    """
    try:
        from granian import Granian
        from granian.constants import Interfaces
        from granian.log import LogLevels
    except ImportError:
        raise click.ClickException(
            "--server granian needs granian: pip install 'starmodel[granian]'"
        ) from None
    multiprocessing.set_start_method("spawn", force=True)
    os.environ[GRANIAN_TARGET_ENV] = import_string
    server = Granian(
        f"{__name__}:granian_app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        working_dir=Path.cwd(),
        log_level=LogLevels(log_level),
        log_dictconfig=log_config,
        log_access=access_log,
        workers_kill_timeout=10,  # a worker that does not stop by itself is killed
    )
    server.serve()


def granian_app() -> ASGIApp:
    """The app a granian worker serves: the one ``starmodel run`` found, wrapped so that
    the stop signal ends its live streams at once (granian waits for open answers to end
    before it runs the app's shutdown, and a live stream never ends by itself)."""
    module_name, _, attr = os.environ[GRANIAN_TARGET_ENV].partition(":")
    app = getattr(importlib.import_module(module_name), attr or "app")
    return _EndsStreamsOnStop(app)


class _EndsStreamsOnStop:
    """ASGI wrapper: when the worker starts (its lifespan), chain a handler to granian's for
    SIGTERM and SIGINT that ends every live stream of this process first."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            _chain_stop_signals(asyncio.get_running_loop())
        await self.app(scope, receive, send)


def _chain_stop_signals(loop: asyncio.AbstractEventLoop) -> None:
    # granian's worker handles the signals in its event loop, which learns of them through
    # the signal wake-up file descriptor: that goes on whatever Python-level handler is set,
    # so this one only adds the app's clean stop (live streams ended with a retry hint, background
    # runs given their grace), begun in the loop between its other callbacks
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def stop(signum: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(begin_stop_everywhere)
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, stop)
