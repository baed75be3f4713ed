"""A Redis and a PostgreSQL server of a test's own (never the machine's shared ones), on free
ports, that the test may freeze (SIGSTOP: the process stays, its sockets stay open, nothing
answers) and thaw (SIGCONT). Each is stopped by its PID at the end, and killed if it does not
stop in time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sm_http import free_port

__all__ = ["OwnPostgres", "OwnRedis", "children_of", "postgres_bin"]

STOP_TIMEOUT = 10.0


def children_of(pid: int) -> list[int]:
    """The PIDs of a process's children (from ``/proc``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (name) state ppid ...": the name may hold spaces, so split after its ")"
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start (code {proc.returncode})")
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.settimeout(0.5)
            sock.connect(("127.0.0.1", port))
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout}s")


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals, what: str) -> None:
    """Thawed, asked to stop with ``sig``, killed (with its children) if it does not."""
    if proc.poll() is not None:
        return
    children = children_of(proc.pid)
    _signal([*children, proc.pid], signal.SIGCONT)
    proc.send_signal(sig)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        _signal([proc.pid, *children], signal.SIGKILL)
        proc.wait(5)
        raise RuntimeError(f"{what} did not stop within {STOP_TIMEOUT}s and was killed") from None


class OwnRedis:
    """A ``redis-server`` on a free loopback port, keeping nothing on disk."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", tempfile.gettempdir(),
        ]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(self.port, self.proc, "redis-server")

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, signal.SIGTERM, "redis-server")


def postgres_bin() -> Path:
    """The newest PostgreSQL server binaries installed (``/usr/lib/postgresql/<version>/bin``)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return found[-1].parent


class OwnPostgres:
    """A PostgreSQL cluster in a temporary folder, serving on a free loopback port (trust
    authentication, user ``postgres``). Run as the ``postgres`` user when the tests run as
    root (``initdb`` refuses root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bin = postgres_bin()
        self.folder = Path(tempfile.mkdtemp(prefix="sm-own-postgres-"))  # not under a 0700 folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        if self.user is not None:
            shutil.chown(self.folder, self.user)
        data = self.folder / "data"
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
            user=self.user, check=True, capture_output=True, timeout=60,
        )
        command = [
            str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.folder),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=60",
        ]
        log = (self.folder / "server.log").open("ab")
        self.proc = subprocess.Popen(command, user=self.user, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_for_port(self.port, self.proc, "postgres")
        deadline = time.monotonic() + 30
        ready = [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        while subprocess.run(ready, capture_output=True, timeout=10).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on port {self.port} did not accept connections")
            time.sleep(0.1)

    def freeze(self) -> None:
        """Stop the postmaster (no new connection is served), then every backend (no
        statement is answered): each is a process of its own."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        _signal(children_of(self.proc.pid), signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        _signal(children_of(self.proc.pid), signal.SIGCONT)
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        try:
            if self.proc is not None:
                _stop(self.proc, signal.SIGINT, "postgres")  # SIGINT: PostgreSQL's fast shutdown
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
