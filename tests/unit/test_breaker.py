"""The circuit breaker in front of each server: one timeout per outage, not one per call."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from starmodel import StoreUnavailable
from starmodel.adapters.driven.breaker import CircuitBreaker


class FakeServer:
    """Answers probes only once it is ``up``; counts them."""

    def __init__(self) -> None:
        self.up = False
        self.probes = 0

    async def probe(self) -> None:
        self.probes += 1
        if not self.up:
            raise ConnectionRefusedError("connection refused")


async def never_answers(ran: list[str] | None = None) -> None:
    if ran is not None:
        ran.append("ran")
    await asyncio.sleep(3600)


async def answers(value: int) -> int:
    return value


def make(server: FakeServer, timeout: float = 0.05, interval: float = 0.02) -> CircuitBreaker:
    return CircuitBreaker("Redis at 10.0.0.1:6379", server.probe, timeout=timeout, interval=interval)


async def test_a_call_that_gets_no_answer_in_time_opens_it_and_the_next_calls_fail_at_once():
    breaker = make(FakeServer())
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as timed_out:
        await breaker.call(never_answers())
    assert str(timed_out.value) == "Redis at 10.0.0.1:6379 cannot be reached (no answer within 0.05 s)"
    assert 0.05 <= time.monotonic() - started < 1
    assert breaker.is_open
    ran: list[str] = []
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as refused:
        await breaker.call(never_answers(ran))
    assert time.monotonic() - started < 0.02 and ran == []  # never started, and no warning about it
    assert refused.value.retry_after == 0.02 and refused.value.status_code == 503
    await breaker.close()


async def test_calls_waiting_on_the_server_give_up_as_soon_as_one_finds_it_away():
    breaker = make(FakeServer(), timeout=5)
    started = time.monotonic()
    results = await asyncio.gather(
        breaker.call(never_answers(), timeout=0.05),
        *(breaker.call(never_answers()) for _ in range(5)),
        return_exceptions=True,
    )
    assert time.monotonic() - started < 1  # not the 5 s of their own timeout
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert {str(r) for r in results} == {"Redis at 10.0.0.1:6379 cannot be reached (no answer within 0.05 s)"}
    await breaker.close()


async def test_errors_that_mean_the_server_is_gone_open_it_and_others_pass_through():
    breaker = make(FakeServer())

    async def refused() -> None:
        raise ConnectionRefusedError("Connect call failed")

    async def bad_value() -> None:
        raise ValueError("not a server problem")

    with pytest.raises(ValueError):
        await breaker.call(bad_value(), outages=(OSError,))
    assert not breaker.is_open
    assert await breaker.call(answers(7)) == 7
    with pytest.raises(StoreUnavailable, match="Connect call failed"):
        await breaker.call(refused(), outages=(OSError,))
    assert breaker.is_open
    await breaker.close()


async def test_probes_close_it_once_the_server_answers_and_the_outage_is_logged_once(caplog):
    caplog.set_level(logging.INFO, logger="starmodel.services")
    server = FakeServer()
    breaker = make(server)
    backs: list[str] = []
    breaker.on_back(lambda: backs.append("back"))
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            await breaker.call(never_answers())
    await asyncio.sleep(0.1)
    assert breaker.is_open and server.probes >= 2  # probed in the background meanwhile
    server.up = True
    async with asyncio.timeout(2):
        while breaker.is_open:
            await asyncio.sleep(0.01)
    assert await breaker.call(answers(1)) == 1 and backs == ["back"]
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "starmodel.services"]
    assert messages == [
        ("WARNING", "Redis at 10.0.0.1:6379 cannot be reached (no answer within 0.05 s): calls that need it "
                    "fail at once until it answers again"),
        ("INFO", "Redis at 10.0.0.1:6379 answers again"),
    ]
    await breaker.close()


async def test_the_server_is_named_in_messages_when_the_service_does_not_say():
    breaker = CircuitBreaker(
        "the database", FakeServer().probe, timeout=0.05, server="PostgreSQL at 10.0.0.2:5432"
    )
    error = breaker.trip("no answer within 0.05 s")
    assert str(error) == (
        "the database cannot be reached (PostgreSQL at 10.0.0.2:5432: no answer within 0.05 s)"
    )
    await breaker.close()


async def test_closing_stops_the_probes_and_the_next_call_finds_out_afresh():
    """What ``starmodel run`` does: Redis is checked in a loop of its own, closed, then the
    server's loop uses the same connection; an outage seen before must not outlive it."""
    server = FakeServer()
    breaker = make(server)
    breaker.trip("connection refused")
    await asyncio.sleep(0.05)
    await breaker.close()
    probes = server.probes
    await asyncio.sleep(0.1)
    assert server.probes == probes
    assert not breaker.is_open and await breaker.call(answers(3)) == 3


async def test_asking_whether_the_server_answers_shares_one_probe_and_never_waits_longer_than_asked():
    server = FakeServer()
    server.up = True
    breaker = make(server)
    assert await breaker.answers(within=1) and server.probes == 1

    async def silent() -> None:
        server.probes += 1
        await asyncio.sleep(3600)

    breaker.probe = silent
    started = time.monotonic()
    assert await asyncio.gather(*(breaker.answers(within=0.05) for _ in range(5))) == [False] * 5
    assert time.monotonic() - started < 1 and server.probes == 2  # one probe for all five
    assert not breaker.is_open  # asking opens nothing: the caller decides
    breaker.trip("no answer within 0.05 s")
    assert not await breaker.answers(within=1)  # known to be away: no probe needed
    await breaker.close()
