"""A circuit breaker per server a store or the bus talks to, so that a frozen or unreachable
server costs one timeout, not one per call.

Every call is bounded by a timeout. A call that times out or loses its connection opens the
breaker: the calls waiting on that server give up at once, and from then on calls that need
it fail at once (``StoreUnavailable``, 503) instead of each waiting for its own timeout, or
queueing behind calls that wait. One probe runs in the background, at once and then every
``interval`` seconds, until the server answers again; that closes the breaker. The outage is
logged once (a warning) and so is the recovery (an info line), however many calls were
refused meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any, TypeVar

from starmodel.core.errors import StoreUnavailable
from starmodel.core.tasks import cancel_and_wait

__all__ = ["CircuitBreaker", "discard_unawaited", "first_line"]

log = logging.getLogger("starmodel.services")
T = TypeVar("T")


class CircuitBreaker:
    """The health of one server as this process sees it.

    Args:
        service: how messages name the server (``"Redis at 127.0.0.1:6379"``).
        probe: a cheap round trip to the server (a ``PING``, a ``SELECT 1``).
        timeout: the seconds a call, or a probe, may take.
        interval: the seconds between probes while the breaker is open (also the
            ``Retry-After`` of the calls it refuses).
        server: which server, when ``service`` does not say (``"PostgreSQL at host:5432"``).
    """

    def __init__(
        self,
        service: str,
        probe: Callable[[], Awaitable[Any]],
        *,
        timeout: float,
        interval: float = 1.0,
        server: str = "",
    ) -> None:
        self.service = service
        self.server = server
        self.probe = probe
        self.timeout = timeout
        self.interval = interval
        self.reason: str | None = None  # why the breaker is open; None while it is closed
        self._prober: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[Any] | None = None  # the probe running now, if any
        self._back_handlers: list[Callable[[], None]] = []
        self._waiting: set[Callable[[], None]] = set()  # how to abort each call in flight

    @property
    def is_open(self) -> bool:
        return self.reason is not None

    def unavailable(self) -> StoreUnavailable:
        """The error of a call the breaker refuses (or that opened it)."""
        message = f"{self.service} cannot be reached ({self._why()})"
        return StoreUnavailable(message, retry_after=self.interval)

    def check(self) -> None:
        """Raise ``StoreUnavailable`` at once while the breaker is open."""
        if self.reason is not None:
            raise self.unavailable()

    @contextlib.contextmanager
    def aborting(self, abort: Callable[[], None]) -> Iterator[None]:
        """Within the block, ``abort()`` is called if the breaker opens: a call waiting on the
        server gives up then, rather than when its own timeout runs out."""
        self._waiting.add(abort)
        try:
            yield
        finally:
            self._waiting.discard(abort)

    async def answers(self, within: float) -> bool:
        """Whether the server answers a probe within ``within`` seconds (while the breaker is
        closed; one probe at a time, shared by everyone asking). For calls that may rightly
        take long, such as a statement waiting for a row lock: a slow call is not a silent
        server."""
        return self.reason is None and await self._probe_answers(within)

    def on_back(self, handler: Callable[[], None]) -> None:
        """Call ``handler`` each time the server answers again after an outage."""
        self._back_handlers.append(handler)

    async def call(
        self,
        step: Awaitable[T],
        *,
        timeout: float | None = None,
        outages: tuple[type[BaseException], ...] = (),
    ) -> T:
        """Await ``step`` within ``timeout`` (default: the breaker's).

        Raises ``StoreUnavailable`` without awaiting it while the breaker is open; opens the
        breaker (and raises) when ``step`` times out or raises one of ``outages`` (the errors
        that mean the server is gone). Other errors pass through unchanged.
        """
        if self.reason is not None:
            discard_unawaited(step)
            raise self.unavailable()
        limit = self.timeout if timeout is None else timeout
        deadline = asyncio.timeout(limit)
        try:
            with self.aborting(partial(_expire, deadline)):
                async with deadline:
                    return await step
        except TimeoutError:
            raise self.trip(f"no answer within {limit:g} s") from None
        except outages as exc:
            raise self.trip(first_line(exc)) from None

    def trip(self, reason: str) -> StoreUnavailable:
        """Open the breaker (if it is closed) for ``reason``; the error to raise."""
        if self.reason is None:
            self.reason = reason
            log.warning(
                "%s cannot be reached (%s): calls that need it fail at once until it answers again",
                self.service, self._why(),
            )
            self._start_probing()
            for abort in list(self._waiting):
                abort()
        return self.unavailable()

    def _why(self) -> str:
        return f"{self.server}: {self.reason}" if self.server else str(self.reason)

    async def close(self) -> None:
        """Stop probing and forget the outage (the app is stopping, or its event loop
        ends): a call made after this finds out afresh whether the server answers."""
        self.reason = None
        await cancel_and_wait([self._prober, self._probe_task])
        self._prober = self._probe_task = None

    async def _probe_answers(self, within: float) -> bool:
        """Run the probe (or join the one running) and wait ``within`` seconds at most for
        it. A probe that takes longer is left to end by itself (the probe bounds its own round
        trips) rather than cancelled: cancelling a driver mid-call can cost more waiting."""
        task = self._probe_task
        if task is None or task.done():
            task = self._probe_task = asyncio.get_running_loop().create_task(self._run_probe())
        done, _ = await asyncio.wait({task}, timeout=within)
        return bool(done) and not task.cancelled() and task.result()

    async def _run_probe(self) -> bool:
        try:
            await self.probe()
        except Exception:
            return False
        return True

    def _start_probing(self) -> None:
        if self._prober is None or self._prober.done():
            loop = asyncio.get_running_loop()
            self._prober = loop.create_task(self._probe_until_back(), name=f"starmodel-probe {self.service}")

    async def _probe_until_back(self) -> None:
        while not await self._probe_answers(self.timeout):
            await asyncio.sleep(self.interval)
        self.reason = None
        log.info("%s answers again", self.service)
        for handler in self._back_handlers:
            try:
                handler()
            except Exception:
                log.exception("handler %r of %s coming back failed", handler, self.service)


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type if it has none), for one-line reports."""
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _expire(deadline: asyncio.Timeout) -> None:
    """Make a running ``asyncio.timeout`` block time out now."""
    with contextlib.suppress(RuntimeError):  # the block has ended meanwhile
        deadline.reschedule(asyncio.get_running_loop().time())


def discard_unawaited(step: Awaitable[Any]) -> None:
    """Close a coroutine that will not be awaited (else Python warns that it never was)."""
    if inspect.iscoroutine(step):
        step.close()
