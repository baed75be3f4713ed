"""Health and readiness for load balancers and orchestrators.

``GET /_starmodel/health``: 200 whenever the process answers (liveness).
``GET /_starmodel/ready``: 200 when every service the app uses answers: the SQL database,
Redis, the Redis bus's subscription; else 503 with JSON naming what is down and why. A
stopping server answers 503 too, so that the proxy sends no new work there. Each check goes
through the service's circuit breaker: a server known to be away is reported at once, one
that freezes costs at most one store timeout, and concurrent readiness requests share one
round of checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from starmodel.adapters.driving.web.event_route import front
from starmodel.core.errors import StarModelError

__all__ = [
    "HEALTH_PATH", "READY_PATH", "Breaker", "Readiness", "ServiceCheck", "breaker_check", "service_checks",
]

HEALTH_PATH = "/_starmodel/health"
READY_PATH = "/_starmodel/ready"
ServiceCheck = Callable[[], Awaitable[str | None]]
"""A service's check: ``None`` when it answers, else why it is down (one line)."""
_NO_STORE = {"Cache-Control": "no-store"}


class Breaker(Protocol):
    """What readiness asks of a server's circuit breaker (``driven/breaker.py``)."""

    service: str
    server: str

    @property
    def is_open(self) -> bool: ...

    def unavailable(self) -> Exception: ...

    async def answers(self, within: float) -> bool: ...


def breaker_check(breaker: Breaker, within: float) -> ServiceCheck:
    """A check that asks the server behind ``breaker`` for one probe (shared with any probe
    running), reporting at once while the breaker is open."""

    async def check() -> str | None:
        if breaker.is_open:
            return str(breaker.unavailable())
        if await breaker.answers(within):
            return None
        if breaker.is_open:
            return str(breaker.unavailable())
        where = f" ({breaker.server})" if breaker.server else ""
        return f"{breaker.service}{where} did not answer a probe within {within:g} s"

    return check


class Readiness:
    """Answers the health and readiness requests of one app.

    Args:
        checks: gives a check per service the app uses (``"database"``, ``"redis"``,
            ``"bus"``), asked at each round (entities may be added after the app is built).
        stopping: whether the server is stopping (then it is not ready).
        limit: seconds a round of checks may take in all (a check that takes longer is down).
    """

    def __init__(
        self, checks: Callable[[], dict[str, ServiceCheck]], stopping: Callable[[], bool], limit: float
    ) -> None:
        self.checks = checks
        self.stopping = stopping
        self.limit = limit
        self._round: asyncio.Task[dict[str, str | None]] | None = None

    @classmethod
    def of(cls, web: Any, checks: Callable[[Any], dict[str, ServiceCheck]]) -> Readiness:
        """The readiness of the app ``web`` (its checks: ``checks(web)``), mounted on it."""
        stop = web.stopping
        readiness = cls(partial(checks, web), lambda: stop.stopping, 2 * web.settings.store_timeout)
        readiness.mount(web.app)
        return readiness

    def mount(self, app: Starlette) -> None:
        """Add the two routes in front of the app's own."""
        at = front(app.router.routes)  # after the event route: events are matched first
        app.router.routes.insert(at, Route(HEALTH_PATH, self.health, methods=["GET"]))
        app.router.routes.insert(at + 1, Route(READY_PATH, self.ready, methods=["GET"]))

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=_NO_STORE)

    async def ready(self, request: Request) -> Response:
        if self.stopping():
            headers = {**_NO_STORE, "Retry-After": "1"}
            return JSONResponse({"status": "stopping"}, status_code=503, headers=headers)
        results = await self.check_all()
        down = {name: why for name, why in results.items() if why is not None}
        body = {
            "status": "unavailable" if down else "ready",
            "services": {name: "down" if why else "ok" for name, why in results.items()},
        }
        if down:
            body["down"] = down
            return JSONResponse(body, status_code=503, headers=_NO_STORE)
        return JSONResponse(body, headers=_NO_STORE)

    async def check_all(self) -> dict[str, str | None]:
        """Every service's state (``None``: answers); one round at a time, shared."""
        if self._round is None or self._round.done():
            self._round = asyncio.get_running_loop().create_task(self._run_round())
        return await asyncio.shield(self._round)

    async def _run_round(self) -> dict[str, str | None]:
        checks = self.checks()
        names = list(checks)
        results = await asyncio.gather(*(self._bounded(checks[name]) for name in names))
        return dict(zip(names, results, strict=True))

    async def _bounded(self, check: ServiceCheck) -> str | None:
        try:
            async with asyncio.timeout(self.limit):
                return await check()
        except TimeoutError:
            return f"no answer within {self.limit:g} s"
        except StarModelError as exc:
            return str(exc)
        except Exception as exc:  # a check's own failure is the service's: report, never a 500
            text = str(exc).strip()
            return text.splitlines()[0][:160] if text else type(exc).__name__


def service_checks(web: Any) -> dict[str, ServiceCheck]:
    """What the readiness of a ``StarModel`` app checks: the database (with SQL entities or
    ``DATABASE_URL``; a SQLite file has no server to ask), Redis (with entities kept there,
    or ``REDIS_URL``) and the Redis bus's subscription."""
    checks: dict[str, ServiceCheck] = {}
    services, settings = web.services, web.settings
    if web.sql_entities() or settings.database_url:
        breaker = services.database.breaker
        if breaker is not None:
            checks["database"] = breaker_check(breaker, settings.store_timeout)
    if web.redis_entities() or settings.redis_url:
        checks["redis"] = partial(_redis_check, services)
    if hasattr(services.bus, "wait_connected"):  # a bus over Redis (not importing it here)
        checks["bus"] = partial(_bus_check, services.bus)
    return checks


async def _redis_check(services: Any) -> str | None:
    await services.redis.ping()  # StoreUnavailable names the server and why
    return None


async def _bus_check(bus: Any) -> str | None:
    if bus.connected and not bus.connection.breaker.is_open:
        return None
    return "the Redis bus is not subscribed: changes reach only this process's tabs"
