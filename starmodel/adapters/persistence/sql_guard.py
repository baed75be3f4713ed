"""Round trips to a SQL server bounded in time, so that a frozen database answers 503 within
the store timeout instead of holding requests, and their pooled connections, for minutes.

A statement, commit or rollback that gets no answer in time has its connection cut: the
driver's connection is terminated at once (closing it politely would wait on the frozen
server too, and so would a driver-side statement timeout, which asks the server to cancel).
The database's circuit breaker then opens, so other calls fail at once until a probe gets an
answer. Rolling back or closing while the breaker is open cuts the connection instead: the
server rolls back what a lost connection left. SQLite is a file within this process's reach
and has no breaker: its connections pass through unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

from starmodel.adapters.breaker import CircuitBreaker, discard_unawaited, first_line
from starmodel.core.errors import StoreUnavailable

__all__ = ["GuardedConnection", "GuardedTransaction"]

T = TypeVar("T")


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

    async def __aenter__(self) -> GuardedConnection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _bounded(self, step: Awaitable[T]) -> T:
        """Await one round trip; cut the connection if it takes longer than the timeout."""
        breaker = self.breaker
        if breaker is None:
            return await step
        if self.cut or (breaker.is_open and not self.probing):
            discard_unawaited(step)
            raise breaker.unavailable() if breaker.is_open else self._no_answer()
        timer = asyncio.get_running_loop().call_later(breaker.timeout, self._cut)
        try:
            with breaker.aborting(self._cut):  # another call found the server away: cut now
                return await step
        except Exception as exc:
            if self.cut:
                raise self._no_answer() from None
            if isinstance(exc, OSError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
                raise breaker.trip(first_line(getattr(exc, "orig", None) or exc)) from None
            raise
        finally:
            timer.cancel()

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
