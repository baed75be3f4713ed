"""Round trips to a SQL server watched, so that a frozen database answers 503 within the
store timeout instead of holding requests, and their pooled connections, for minutes.

A statement may rightly take long (waiting for a row lock that other writers hold, say), so
its duration alone proves nothing: when one has run for half the store timeout, the database
is asked whether it still answers (a probe on a connection of its own, shared by every call
asking at that moment). If it does, the statement goes on (up to ``PATIENCE`` timeouts); if
the probe gets no answer within the other half, the database's circuit breaker opens, which
cuts every connection waiting on it: the driver's connection is terminated at once (closing
it politely would wait on the frozen server too, and so would a driver-side statement
timeout, which asks the server to cancel). Calls then fail at once until the breaker's probe
gets an answer. Rolling back or closing while the breaker is open cuts the connection
instead: the server rolls back what a lost connection left. SQLite is a file within this
process's reach and has no breaker: its connections pass through unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

from starmodel.adapters.driven.breaker import CircuitBreaker, discard_unawaited, first_line
from starmodel.adapters.driven.stores.sql_fast import fetch_direct
from starmodel.core.errors import StoreUnavailable

__all__ = ["PATIENCE", "GuardedConnection", "GuardedTransaction"]

T = TypeVar("T")
PATIENCE = 20
"""How many store timeouts one round trip may last while the database answers probes
meanwhile; past that its connection is taken for dead (a connection the server no longer
serves looks like that) and dropped."""


class GuardedConnection:
    """An ``AsyncConnection`` whose round trips each take at most ``breaker.timeout``.

    Args:
        conn: the connection, checked out of the engine's pool.
        breaker: the database's breaker (``None``: no bound, for SQLite).
        probing: the breaker's own probe, which runs while the breaker is open.
        release: called once the connection is closed (it frees a slot of the pool).
    """

    def __init__(
        self,
        conn: AsyncConnection,
        breaker: CircuitBreaker | None,
        *,
        probing: bool = False,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.conn = conn
        self.breaker = breaker
        self.probing = probing
        self._release = release
        self.cut = False  # terminated: a round trip got no answer in time, or the server is away

    async def execute(self, statement: Any, params: Any = None) -> Any:
        return await self._bounded(self.conn.execute(statement, params))

    async def direct(self, sql: str, args: Sequence[Any]) -> Any:
        """One statement straight to asyncpg, outside any transaction (see ``sql_fast``): its
        first row or ``None``."""
        return await self._bounded(fetch_direct(self.conn, sql, args))

    async def begin(self) -> GuardedTransaction:
        return GuardedTransaction(self, await self._bounded(self.conn.begin()))

    async def close(self) -> None:
        """Give the connection back to the pool, or drop it if the server is away."""
        try:
            if not self._away():
                try:
                    await self._bounded(self.conn.close())
                    return
                except Exception:
                    pass  # no answer: dropped below
            await self._drop()
            await self.conn.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()

    async def invalidate(self) -> None:
        """Keep this connection out of the pool for good (its transaction is in an unknown
        state, e.g. after a refused ``COMMIT``)."""
        if not self.conn.invalidated and not self.conn.closed:
            await self.conn.invalidate()

    async def __aenter__(self) -> GuardedConnection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _bounded(self, step: Awaitable[T]) -> T:
        """Await one round trip, watched (see the module docstring)."""
        breaker = self.breaker
        if breaker is None:
            return await step
        if self.cut or (breaker.is_open and not self.probing):
            discard_unawaited(step)
            raise breaker.unavailable() if breaker.is_open else self._no_answer()
        watch = _Watch(self, breaker)
        try:
            with breaker.aborting(self._cut):  # the server was found away: cut now
                return await step
        except Exception as exc:
            if watch.overdue:
                raise StoreUnavailable(
                    f"the database took over {watch.patience:g} s to answer a statement "
                    "(its connection was dropped)"
                ) from None
            if self.cut:
                raise self._no_answer() from None
            if isinstance(exc, OSError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
                raise breaker.trip(first_line(getattr(exc, "orig", None) or exc)) from None
            raise
        finally:
            watch.stop()

    async def _rollback(self, tx: AsyncTransaction) -> None:
        """Roll back within the timeout; if the server is away, drop the connection instead
        (the server rolls back what a lost connection left). Never raises."""
        if not self._away():
            try:
                await self._bounded(tx.rollback())
                return
            except Exception:
                pass  # the connection is unusable: dropped below
        await self._drop()

    def _away(self) -> bool:
        """Whether the server is known not to answer this connection (then it is cut)."""
        if self.breaker is not None and self.breaker.is_open and not self.probing:
            self._cut()
        return self.cut

    async def _drop(self) -> None:
        """Make sure a cut connection is never handed out again by the pool."""
        if self.breaker is not None and not self.conn.invalidated and not self.conn.closed:
            self._cut()
            with contextlib.suppress(Exception):  # unusable already, which is what was wanted
                await self.conn.invalidate()

    def _no_answer(self) -> StoreUnavailable:
        assert self.breaker is not None
        return self.breaker.trip(f"no answer within {self.breaker.timeout:g} s")

    def _cut(self) -> None:
        """Terminate the driver's connection now (no goodbye to the server): the round trip
        waiting on it fails at once, as does anything else still using it."""
        self.cut = True
        sync = self.conn.sync_connection
        if sync is None or sync.closed or sync.invalidated:
            return
        driver = getattr(sync.connection, "driver_connection", None)
        terminate = getattr(driver, "terminate", None)
        if callable(terminate):
            terminate()


class _Watch:
    """Watches one round trip of a ``GuardedConnection`` (see the module docstring); the
    breaker's own probe is simply cut after one timeout."""

    def __init__(self, connection: GuardedConnection, breaker: CircuitBreaker) -> None:
        self.connection = connection
        self.breaker = breaker
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.patience = breaker.timeout * PATIENCE
        self.overdue = False
        self._asking: asyncio.Task[None] | None = None
        if connection.probing:
            self._timer = self.loop.call_later(breaker.timeout, connection._cut)
        else:
            self._timer = self.loop.call_later(breaker.timeout / 2, self._suspect)

    def stop(self) -> None:
        self._timer.cancel()
        if self._asking is not None:
            self._asking.cancel()

    def _suspect(self) -> None:
        self._asking = self.loop.create_task(self._ask())

    async def _ask(self) -> None:
        half = self.breaker.timeout / 2
        if not await self.breaker.answers(within=half):
            self.breaker.trip(f"no answer within {self.breaker.timeout:g} s")  # cuts all waiting
            self.connection._cut()
        elif self.loop.time() - self.started >= self.patience:
            self.overdue = True
            self.connection._cut()
        else:
            self._timer = self.loop.call_later(half, self._suspect)


class GuardedTransaction:
    """The transaction of a ``GuardedConnection``: commit bounded, rollback never waits."""

    def __init__(self, connection: GuardedConnection, tx: AsyncTransaction) -> None:
        self.connection = connection
        self.tx = tx

    @property
    def is_active(self) -> bool:
        return self.tx.is_active

    async def commit(self) -> None:
        await self.connection._bounded(self.tx.commit())

    async def rollback(self) -> None:
        await self.connection._rollback(self.tx)
