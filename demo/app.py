"""StarModel demo: a per-session counter, a counter shared by everybody, a long task that
streams its progress, a todo list kept in SQL (``demo/todos.py``), a recent-activity feed
kept in Redis (``demo/activity.py``), and a product catalogue with generated pages, a JSON API
and an admin behind sign-in (``demo/products.py``). Open it in two tabs (same session) and two browsers (two
sessions); with ``REDIS_URL`` set, run it as several processes and they share everything."""

from __future__ import annotations

import asyncio

from datastar_py import attribute_generator as data
from fasthtml.common import Div, Input, P, Span, Title
from monsterui.all import (
    H1,
    H3,
    Button,
    ButtonT,
    Card,
    Container,
    DivLAligned,
    Grid,
    Progress,
    TextPresets,
)

from demo.activity import SHARED_STORE, Activity, activity_card, follow_activity
from demo.batteries import (
    Chart,
    ImportJob,
    Preferences,
    Showcase,
    chart_card,
    import_card,
    preferences_card,
    showcase_card,
)
from demo.products import install_shop, shop_links
from demo.todos import Todo, database_url, todo_card, todo_row
from starmodel import Entity, StarModel, StoreUnavailable, computed, event, toast
from starmodel.ui import theme_picker


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


TODOS_SHOWN = 200
"""The page shows the first todos, in the order they were added."""

# Arguments override the environment, so DATABASE_URL is read here: it still wins when set.
sm = StarModel(title="StarModel demo", database_url=database_url())
sm.row_view(Todo)(todo_row)  # rows created anywhere are drawn in every open todo list
auth = install_shop(sm)  # accounts, /products (generated CRUD + JSON API), /admin
follow_activity(sm)
sm.every(1.0, Chart.sample)  # the live chart gets a point a second, for as long as the app runs
app = sm.app


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


@app.route("/")
async def index(request):
    counter = await sm.load(Counter, request)
    shared = await sm.load(SharedCounter)
    task = await sm.load(LongTask, request)
    todos = await sm.list(Todo, limit=TODOS_SHOWN)
    try:
        activity: Activity | None = await sm.load(Activity)
    except StoreUnavailable:  # Redis down: the rest of the page still works
        activity = None
    return Title("StarModel demo"), Container(
        theme_picker(cls="float-right mt-6"),
        H1("StarModel demo", cls="my-6"),
        shop_links(await auth.user(request)),
        Grid(counter_card(counter), shared_card(shared), task_card(task), cols_lg=3, cols=1),
        Grid(todo_card(sm, todos), activity_card(activity), cols_lg=2, cols=1),
        Grid(
            preferences_card(await sm.load(Preferences, request)),
            import_card(await sm.load(ImportJob)),
            chart_card(await sm.load(Chart)),
            cols_lg=3, cols=1,
        ),
        showcase_card(await sm.load(Showcase, request)),
        cls="space-y-6",
    )
