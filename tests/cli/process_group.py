"""Server processes started by tests in a process group of their own, so that a stop that
times out kills everything they started (workers, the resource tracker), not only the parent."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

__all__ = ["group_alive", "kill_group", "stop_group"]


def group_alive(proc: subprocess.Popen[str]) -> list[int]:
    """The PIDs still in ``proc``'s process group (``proc`` was started with
    ``start_new_session=True``), zombies left out."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[2]) == proc.pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def stop_group(proc: subprocess.Popen[str], timeout: float = 15.0, *, signalled: bool = False) -> str:
    """SIGTERM to the server (unless ``signalled`` already), its output once it and every
    process it started have ended; if that takes more than ``timeout`` seconds the whole group
    is killed and the test fails."""
    if proc.poll() is None and not signalled:
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=timeout)
        deadline = time.monotonic() + 5
        while group_alive(proc) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = group_alive(proc)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, _ = proc.communicate()
        raise AssertionError(f"the server did not stop within {timeout}s (killed):\n{out[-3000:]}") from None
    if left:
        kill_group(proc)
        raise AssertionError(f"processes {left} outlived the server (killed)")
    return out
