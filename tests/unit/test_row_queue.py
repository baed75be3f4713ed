"""The queue of one record's short-way writes (``sql_fast.RowQueue``), with a fake database:
one statement in flight; the writes queued meanwhile sent as one; a refused write refuses
those built on it; a statement without an answer fails its whole batch without a re-run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from starmodel.adapters.driven.stores.sql_fast import QueuedWrite, RowQueue
from starmodel.core.errors import ConcurrencyError, StoreUnavailable


class FakeRow:
    """A record with a version, updated as the short way's statement would: only if the
    version read is the stored one. Each statement waits until the test answers it
    (``answer(n)``), or fails it (``answer(n, error)``); ``gate.set()`` answers them all."""

    def __init__(self) -> None:
        self.version = 1
        self.count = 0
        self.sent: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self._answers: list[asyncio.Future[BaseException | None]] = []

    def answer(self, n: int, error: BaseException | None = None) -> None:
        self._answers[n].set_result(error)

    async def send(self, values: dict[str, Any]) -> dict[str, Any] | None:
        self.sent.append(values)
        answer: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._answers.append(answer)
        gate = asyncio.create_task(self.gate.wait())
        await asyncio.wait((answer, gate), return_when=asyncio.FIRST_COMPLETED)
        gate.cancel()
        if answer.done() and answer.result() is not None:
            raise answer.result()
        if values["sm_read"] != self.version:
            return None
        self.version, self.count = values["new_sm_version"], values["new_count"]
        return {"count": self.count, "sm_version": self.version}


def update(read: int, count: int, base: QueuedWrite | None = None) -> QueuedWrite:
    return QueuedWrite({"sm_read": read, "new_sm_version": read + 1, "new_count": count}, base)


async def started(
    queue: RowQueue, row: FakeRow, write: QueuedWrite, told: list[str], name: str
) -> asyncio.Task[Any]:
    task = asyncio.create_task(queue.write(write, row.send, lambda: told.append(name)))
    while name not in told and not task.done():
        await asyncio.sleep(0)
    return task


@pytest.fixture
def queue() -> RowQueue:
    return RowQueue(lambda _: None)


async def test_writes_queued_while_one_is_in_flight_go_out_as_one_statement(queue):
    row, told = FakeRow(), []
    first = update(1, 1)
    second = update(2, 2, base=first)
    third = update(3, 3, base=second)
    writes = ((first, "1"), (second, "2"), (third, "3"))
    tasks = [await started(queue, row, write, told, name) for write, name in writes]
    assert told == ["1", "2", "3"]  # each had its place at once, before anything was stored
    assert len(row.sent) == 1
    row.gate.set()
    results = await asyncio.gather(*tasks)
    assert len(row.sent) == 2  # the first alone, then the two queued meanwhile together
    assert row.sent[1]["sm_read"] == 2 and row.sent[1]["new_count"] == 3
    assert (row.count, row.version) == (3, 4)
    assert results[0] == {"count": 1, "sm_version": 2} and results[2] == {"count": 3, "sm_version": 4}
    assert all(write.outcome.result() for write in (first, second, third))


async def test_a_refused_write_refuses_the_writes_built_on_it_and_they_are_never_sent(queue):
    row, told = FakeRow(), []
    row.version = 9  # another process wrote meanwhile
    first = update(1, 1)
    second = update(2, 2, base=first)
    fresh = update(9, 10)  # read from the database, after the other process's write
    writes = ((first, "1"), (second, "2"), (fresh, "f"))
    tasks = [await started(queue, row, write, told, name) for write, name in writes]
    row.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], ConcurrencyError) and isinstance(results[1], ConcurrencyError)
    assert results[2] == {"count": 10, "sm_version": 10}
    assert [values["sm_read"] for values in row.sent] == [1, 9]  # the second never went out
    late = update(2, 2, base=first)
    with pytest.raises(ConcurrencyError):
        await queue.write(late, row.send, lambda: None)
    assert len(row.sent) == 2


async def test_a_statement_without_an_answer_fails_its_whole_batch_and_nothing_is_re_run(queue):
    row, told = FakeRow(), []
    first = update(1, 1)
    second = update(2, 2, base=first)
    third = update(3, 3, base=second)
    after = update(4, 4, base=third)
    one = await started(queue, row, first, told, "1")
    two = await started(queue, row, second, told, "2")
    three = await started(queue, row, third, told, "3")
    row.answer(0)
    assert await one == {"count": 1, "sm_version": 2}
    four = await started(queue, row, after, told, "4")  # waits behind the batch of 2 and 3
    while len(row.sent) < 2:
        await asyncio.sleep(0)
    row.answer(1, StoreUnavailable("the database cannot be reached"))
    results = await asyncio.gather(two, three, four, return_exceptions=True)
    assert isinstance(results[0], StoreUnavailable) and isinstance(results[1], StoreUnavailable)
    assert isinstance(results[2], ConcurrencyError)  # never sent: safe to re-run
    assert len(row.sent) == 2


async def test_a_cancelled_waiting_write_leaves_the_queue_and_those_built_on_it(queue):
    row, told = FakeRow(), []
    first = update(1, 1)
    second = update(2, 2, base=first)
    third = update(3, 3, base=second)
    other = update(2, 5, base=first)
    one = await started(queue, row, first, told, "1")
    two = await started(queue, row, second, told, "2")
    three = await started(queue, row, third, told, "3")
    two.cancel()
    await asyncio.sleep(0)
    row.gate.set()
    assert await one == {"count": 1, "sm_version": 2}
    with pytest.raises(asyncio.CancelledError):
        await two
    with pytest.raises(ConcurrencyError):
        await three
    assert await queue.write(other, row.send, lambda: None) == {"count": 5, "sm_version": 3}
    assert len(row.sent) == 2
