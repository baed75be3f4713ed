"""The demo's batteries: preferences kept in the browser, a background import with progress
and cancel, a live chart fed by a periodic job, and every kind of action.

- ``Preferences`` (a name and a language) is a ``CLIENT_LOCAL`` entity: it lives in this
  browser's localStorage, comes back after a reload, follows along in the browser's other tabs,
  and is checked by the server before every use (tampered data is refused and reset).
- ``ImportJob`` is global: anybody can start the import (a background event) and every tab
  sees its progress, even one opened after it started; anybody can cancel it.
- ``Chart`` is global and fed by ``sm.every(1.0, Chart.sample)``: a new point every second,
  drawn as an SVG line whose points come from a computed signal (no chart library needed).
- ``Showcase`` returns each action: toasts of every variant, an alert, a script, a signals
  patch, a redirect, and a background event that yields toasts as it goes.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any, Literal

from datastar_py import attribute_generator as data
from fasthtml.common import Div, Input, P, Span
from fasthtml.svg import Polyline, Svg
from monsterui.all import H3, Button, ButtonT, Card, DivLAligned, Progress, TextPresets
from pydantic import Field

from starmodel import Entity, StateStore, alert, computed, event, patch_signals, redirect, script, toast

__all__ = [
    "CHART_POINTS",
    "Chart",
    "ImportJob",
    "Preferences",
    "Showcase",
    "chart_card",
    "import_card",
    "preferences_card",
    "showcase_card",
]

# language -> (greeting, its closing punctuation)
GREETINGS = {"en": ("Hello", "!"), "fr": ("Bonjour", " !"), "de": ("Hallo", "!")}
NAME_MAX = 40
TOAST_ARTICLES = {"info": "An", "success": "A", "warning": "A", "error": "An"}
CHART_POINTS = 30
CHART_WIDTH, CHART_HEIGHT = 300, 80


class Preferences(Entity):
    """Your name and language, kept in this browser (localStorage), checked by the server.
    (The page's light / dark mode and colours are the theme picker's: one way to choose them.)"""

    model_config = {"store": StateStore.CLIENT_LOCAL}

    name: str = Field(default="", max_length=NAME_MAX)
    language: Literal["en", "fr", "de"] = "en"

    @computed
    def greeting(self) -> str:
        word, end = GREETINGS[self.language]
        return f"{word}, {self.name}{end}" if self.name else f"{word}{end}"

    @event
    def set_name(self, typed_name: str):
        """The name typed in the box (``$preferences.typed_name``); too long is a 422."""
        self.name = " ".join(typed_name.split())

    @event
    def set_language(self, language: Literal["en", "fr", "de"]):
        self.language = language


class ImportJob(Entity):
    """An import everybody watches: a background event with progress, and its cancel."""

    model_config = {"scope": "global"}

    status: Literal["idle", "importing", "done", "cancelled"] = "idle"
    imported: int = 0
    total: int = 0

    @computed
    def percent(self) -> int:
        return round(self.imported * 100 / self.total) if self.total else 0

    @event(background=True)
    async def start(self, rows: int = 40):
        """Import ``rows`` rows, one every 0.25 s; every tab follows, cancel stops it."""
        if not 1 <= rows <= 1000:
            raise ValueError("rows must be between 1 and 1000")
        if self.status == "importing":
            yield toast("An import is running already", "warning")
            return
        self.status, self.imported, self.total = "importing", 0, rows
        yield toast(f"Import of {rows} rows started", "info")
        try:
            for row in range(1, rows + 1):
                await asyncio.sleep(0.25)
                self.imported = row
                yield None
        except asyncio.CancelledError:
            self.status = "cancelled"
            yield toast(f"Import cancelled after {self.imported} rows", "warning")
            return
        self.status = "done"
        yield toast(f"Imported {rows} rows", "success")


class Chart(Entity):
    """A live series: a periodic job adds a point every second."""

    model_config = {"scope": "global"}

    values: list[float] = []

    @computed
    def polyline(self) -> str:
        """The SVG ``points`` of the line (x spread over the width, y scaled to the height)."""
        if not self.values:
            return ""
        step = CHART_WIDTH / max(1, CHART_POINTS - 1)
        return " ".join(
            f"{i * step:.1f},{CHART_HEIGHT - value * CHART_HEIGHT:.1f}" for i, value in enumerate(self.values)
        )

    @computed
    def count(self) -> int:
        return len(self.values)

    @event
    def sample(self):
        """Add a point (what the periodic job runs): a wave with some noise, in 0..1."""
        t = len(self.values) + random.random()
        value = 0.5 + 0.35 * math.sin(t / 3) + random.uniform(-0.1, 0.1)
        self.values = [*self.values[-(CHART_POINTS - 1):], round(min(1.0, max(0.0, value)), 3)]

    @event
    def clear(self):
        self.values = []


class Showcase(Entity):
    """Each kind of action an event can return or yield."""

    clicks: int = 0
    note: str = ""

    @event
    def notify(self, variant: Literal["info", "success", "warning", "error"] = "info"):
        self.clicks += 1
        return toast(f"{TOAST_ARTICLES[variant]} {variant} toast", variant)

    @event
    def warn(self):
        return alert("An alert from the server")

    @event
    def run_script(self):
        return script("document.getElementById('showcase-script').textContent = 'Script ran'")

    @event
    def patch(self):
        return patch_signals(showcase={"note": "Patched by the server"})

    @event
    def go(self):
        return redirect("/actions?from=redirect")

    @event(background=True)
    async def countdown(self, start: int = 3):
        """Yields a toast a second from a background task."""
        for n in range(start, 0, -1):
            yield toast(f"Countdown: {n}", "info", 900)
            await asyncio.sleep(1)
        yield toast("Lift-off", "success")


# --- views ------------------------------------------------------------------------------


def preferences_card(prefs: Preferences) -> Any:
    sig = Preferences.sig
    return Card(
        prefs,
        Div(
            Span(data.text(sig.greeting), id="prefs-greeting", cls="text-2xl font-bold"),
            Span(" language: ", Span(data.text(sig.language), id="prefs-language"), cls="text-sm"),
            id="prefs-panel",
        ),
        DivLAligned(
            Input(type="text", placeholder="your name", id="prefs-name", cls="uk-input w-40",
                  maxlength=str(NAME_MAX), **{"data-bind": f"{Preferences.namespace()}.typed_name"}),
            Button("Save", data.on("click", Preferences.set_name()), id="prefs-save"),
        ),
        Span(id="prefs-error", cls="text-sm text-red-600",
             **{"data-text": f"{sig['_errors']}?.name ?? ''"}),
        DivLAligned(
            *[
                Button(code.upper(), data.on("click", Preferences.set_language(code)), id=f"prefs-{code}")
                for code in GREETINGS
            ],
        ),
        header=H3("Preferences"),
        footer=P("CLIENT_LOCAL: kept in this browser, shared by its tabs, checked by the server.",
                 cls=TextPresets.muted_sm),
    )


def import_card(job: ImportJob) -> Any:
    sig = ImportJob.sig
    return Card(
        job,
        Progress(value=job.percent, max=100, id="import-progress", **{"data-attr:value": sig.percent}),
        DivLAligned(
            Span(data.text(f"{sig.imported} + ' / ' + {sig.total}"), id="import-count"),
            Span(data.text(sig.status), id="import-status", cls=TextPresets.muted_sm),
        ),
        DivLAligned(
            Button("Start import", data.on("click", ImportJob.start(40)), id="import-start",
                   cls=ButtonT.primary),
            Button("Cancel", data.on("click", ImportJob.start.cancel()), id="import-cancel",
                   cls=ButtonT.destructive),
        ),
        header=H3("Background import"),
        footer=P("Runs on when you close the tab; every viewer sees it and can cancel it.",
                 cls=TextPresets.muted_sm),
    )


def chart_card(chart: Chart) -> Any:
    sig = Chart.sig
    return Card(
        chart,
        Svg(
            Polyline(points=chart.polyline, fill="none", stroke="currentColor", stroke_width="2",
                     id="chart-line", **{"data-attr:points": sig.polyline}),
            viewBox=f"0 0 {CHART_WIDTH} {CHART_HEIGHT}", cls="w-full h-24 text-blue-600",
        ),
        DivLAligned(
            Span(data.text(f"{sig.count} + ' points'"), id="chart-count", cls=TextPresets.muted_sm),
            Button("Clear", data.on("click", Chart.clear()), id="chart-clear"),
        ),
        header=H3("Live chart"),
        footer=P("A periodic job (sm.every) adds a point every second.", cls=TextPresets.muted_sm),
    )


def showcase_card(showcase: Showcase) -> Any:
    return Card(
        showcase,
        DivLAligned(*[
            Button(variant.title(), data.on("click", Showcase.notify(variant)), id=f"showcase-{variant}")
            for variant in ("info", "success", "warning", "error")
        ]),
        DivLAligned(
            Button("Alert", data.on("click", Showcase.warn()), id="showcase-alert"),
            Button("Script", data.on("click", Showcase.run_script()), id="showcase-run-script"),
            Button("Patch signals", data.on("click", Showcase.patch()), id="showcase-patch"),
            Button("Redirect", data.on("click", Showcase.go()), id="showcase-redirect"),
            Button("Countdown (background)", data.on("click", Showcase.countdown(3)),
                   id="showcase-countdown"),
        ),
        DivLAligned(
            Span(id="showcase-script", cls=TextPresets.muted_sm),
            Span(data.text(Showcase.sig.note), id="showcase-note", cls=TextPresets.muted_sm),
        ),
        header=H3("Actions", id="showcase"),
        footer=P("toast, alert, script, patch_signals, redirect; from events and background events.",
                 cls=TextPresets.muted_sm),
    )
