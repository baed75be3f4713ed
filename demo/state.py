"""Session and global state: a counter per browser session, a counter shared by everybody,
and a long task whose progress streams to the page (in the answer to the click, or from a
background event that every tab of the session follows)."""

from __future__ import annotations

import asyncio

from datastar_py import attribute_generator as data
from fasthtml.common import Div, Input, P, Span
from monsterui.all import H3, Button, ButtonT, Card, DivLAligned, Progress, TextPresets

from demo.activity import SHARED_STORE
from starmodel import Entity, computed, event, toast

__all__ = ["Counter", "LongTask", "SharedCounter", "counter_card", "shared_card", "task_card"]


class Counter(Entity):
    """One counter per browser session (the default scope of memory entities)."""

    count: int = 0

    @computed
    def doubled(self) -> int:
        return self.count * 2

    @event
    def increment(self, amount: int = 1):
        self.count += amount

    @event
    def decrement(self, amount: int = 1):
        self.count -= amount

    @event
    def add(self, typed: int):
        """Add the number typed in the box: the parameter is fed by the signal of the same name
        (``$counter.typed``, bound to the input); a non-number is refused with a 422."""
        if abs(typed) > 1000:
            raise ValueError("Add at most 1000 at a time")
        self.count += typed

    @event(selector="#counter-status")
    def reset(self):
        self.count = 0
        return Div("Counter reset!", id="counter-status", cls="text-sm"), toast("Counter reset")


class SharedCounter(Entity):
    """One counter for everybody: every open tab sees each click (in Redis when ``REDIS_URL``
    is set, so every server process shares it)."""

    count: int = 0
    model_config = {"scope": "global", "store": SHARED_STORE}

    @event
    def increment(self, amount: int = 1):
        self.count += amount

    @event
    def reset(self):
        self.count = 0


class LongTask(Entity):
    """A job whose progress streams to the page as it runs."""

    progress: int = 0
    status: str = "idle"

    @event
    async def run(self, steps: int = 10):
        """Streams its progress in the answer to the click (stops if the tab goes away)."""
        async for step in self._work(steps):
            yield step

    @event(background=True)
    async def run_in_background(self, steps: int = 40):
        """Answers at once and runs on: progress reaches every tab of the session through the
        live stream, even a tab opened after it started."""
        async for step in self._work(steps):
            yield step

    async def _work(self, steps: int):
        if not 1 <= steps <= 100:
            raise ValueError("steps must be between 1 and 100")
        self.status = "running"
        self.progress = 0
        for done in range(1, steps + 1):
            await asyncio.sleep(0.15)
            self.progress = round(done * 100 / steps)
            yield Span(f"Step {done} of {steps}", id="task-step")
        self.status = "done"


def counter_card(counter: Counter):
    sig = Counter.sig
    return Card(
        counter,
        DivLAligned(
            Span(data.text(sig.count), id="counter-value", cls="text-4xl font-bold"),
            Span("doubled: ", Span(data.text(sig.doubled), id="counter-doubled"), cls="text-sm"),
        ),
        DivLAligned(
            Button("-1", data.on("click", Counter.decrement()), id="counter-dec"),
            Button("+1", data.on("click", Counter.increment()), cls=ButtonT.primary,
                   id="counter-inc"),
            Button("+5", data.on("click", Counter.increment(5)), id="counter-inc5"),
            Button("Reset", data.on("click", Counter.reset()), cls=ButtonT.destructive,
                   id="counter-reset"),
        ),
        DivLAligned(
            Input(type="text", placeholder="amount", id="counter-amount", cls="uk-input w-32",
                  **{"data-bind": f"{Counter.namespace()}.typed"}),
            Button("Add", data.on("click", Counter.add()), id="counter-add"),
        ),
        Span(id="counter-error", cls="text-sm text-red-600",
             **{"data-text": f"{sig['_errors']}?.typed ?? ''"}),
        Div(id="counter-status"),
        header=H3("Your counter"),
        footer=P("Per session: your other tabs follow along.", cls=TextPresets.muted_sm),
    )


def shared_card(shared: SharedCounter):
    return Card(
        shared,
        Span(data.text(SharedCounter.sig.count), id="shared-value", cls="text-4xl font-bold"),
        DivLAligned(
            Button("+1", data.on("click", SharedCounter.increment()), cls=ButtonT.primary,
                   id="shared-inc"),
            Button("Reset", data.on("click", SharedCounter.reset()), id="shared-reset"),
        ),
        header=H3("Shared counter"),
        footer=P("Global: every browser sees every click.", cls=TextPresets.muted_sm),
    )


def task_card(task: LongTask):
    sig = LongTask.sig
    return Card(
        task,
        Progress(value=task.progress, max=100, id="task-progress", **{"data-attr:value": sig.progress}),
        DivLAligned(
            Span(data.text(sig.progress + " + '%'"), id="task-percent"),
            Span(data.text(sig.status), id="task-status", cls=TextPresets.muted_sm),
            Span(id="task-step", cls=TextPresets.muted_sm),
        ),
        DivLAligned(
            Button("Run task", data.on("click", LongTask.run(20)), id="task-run", cls=ButtonT.primary),
            Button("Run in background", data.on("click", LongTask.run_in_background()),
                   id="task-run-background"),
        ),
        header=H3("Long task"),
        footer=P("An async generator: every yield reaches the page at once.",
                 cls=TextPresets.muted_sm),
    )
