"""The flagship page: a live team board.

- ``Ticket`` is a SQL record: a card of the board, in one of three lanes. Anybody may add one
  or move it; every open board sees it at once (a live list, drawn by ``ticket_row``).
- ``BoardFeed`` is a global entity (in Redis when ``REDIS_URL`` is set): the last moves, and who
  made them ("who is here": the people who acted last). A bus subscriber writes it after each
  committed ticket change, naming the visitor by their session (``nickname``).
- ``BoardPulse`` is a global entity fed by a periodic job (``sm.every``): every two seconds it
  samples how many tickets each lane holds, and the page draws the last minute as a sparkline.

Seeded at start: an empty board gets ``SAMPLE_TICKETS`` (a board that has any ticket is left
as it is).
"""

from __future__ import annotations

import hashlib
import logging
import time
from enum import StrEnum
from typing import Annotated, Any

from datastar_py import attribute_generator as data
from fasthtml.common import Button as PlainButton
from fasthtml.common import Div, Form, Input, Li, P, Span, Ul
from fasthtml.svg import Polyline, Svg
from monsterui.all import H3, Button, ButtonT, Card, TextPresets
from pydantic import StringConstraints
from sqlmodel import Field

from demo.activity import SHARED_STORE
from starmodel import (
    CallContext,
    Entity,
    EntityChanged,
    StarModel,
    StarModelError,
    computed,
    event,
    patch_signals,
)

__all__ = [
    "AVATARS",
    "SAMPLE_TICKETS",
    "BoardFeed",
    "BoardPulse",
    "Lane",
    "Ticket",
    "board_view",
    "follow_board",
    "nickname",
    "sample_board",
    "seed_tickets",
    "ticket_row",
]

log = logging.getLogger("demo.board")

TITLE_MAX = 60
AVATARS = 6
FEED_LINES = 6
PULSE_POINTS = 30
SPARK_WIDTH, SPARK_HEIGHT = 240, 48
TicketTitle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=TITLE_MAX)]


class Lane(StrEnum):
    todo = "todo"
    doing = "doing"
    done = "done"


LANE_TITLES = {Lane.todo: "To do", Lane.doing: "In progress", Lane.done: "Done"}
LANE_COUNTS = {Lane.todo: "todo", Lane.doing: "doing", Lane.done: "done_now"}  # fields of BoardPulse
NEXT_LANE = {Lane.todo: Lane.doing, Lane.doing: Lane.done, Lane.done: Lane.todo}


class Ticket(Entity, table=True):
    """A card of the team board: a row of the ``ticket`` table, live in every open board."""

    model_config = {"presence": True}  # who is looking at each ticket (the /presence page)

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(min_length=2, max_length=TITLE_MAX)
    lane: Lane = Lane.todo
    points: int = Field(default=1, ge=1, le=13)

    @event
    def create(cls, new_ticket: TicketTitle) -> Any:
        """Add a card to "To do" (the box is ``$ticket.new_ticket``; too short is a 422)."""
        cls.records.add(Ticket(title=new_ticket, points=len(new_ticket) % 5 + 1))
        return patch_signals(ticket={"new_ticket": ""})

    @event
    def advance(self) -> None:
        """To do -> In progress -> Done -> To do."""
        self.lane = NEXT_LANE[self.lane]

    @event
    def move(self, lane: Lane) -> None:
        self.lane = lane


class BoardFeed(Entity):
    """What happened on the board lately, and who did it (newest first)."""

    model_config = {"store": SHARED_STORE, "scope": "global", "ttl": 3600}

    lines: list[str] = []
    people: list[str] = []

    @computed
    def shown(self) -> list[str]:
        """The feed's lines, padded with empty ones to a fixed count (an empty line is hidden)."""
        return [*self.lines, *[""] * FEED_LINES][:FEED_LINES]

    @computed
    def initials(self) -> list[str]:
        """The avatars' letters, padded to a fixed count (an empty avatar is hidden)."""
        found = ["".join(word[0] for word in name.split()[:2]) for name in self.people]
        return [*found, *[""] * AVATARS][:AVATARS]

    @computed
    def colours(self) -> list[str]:
        return [*[colour_of(name) for name in self.people], *["transparent"] * AVATARS][:AVATARS]

    @computed
    def names(self) -> list[str]:
        return [*self.people, *[""] * AVATARS][:AVATARS]

    @event
    def note(self, text: str, who: str = "") -> None:
        """Put ``text`` on top of the feed; ``who`` joins the front of the people seen."""
        self.lines = [f"{time.strftime('%H:%M')}  {text[:100]}", *self.lines][:FEED_LINES]
        if who:
            self.people = [who[:40], *[p for p in self.people if p != who]][:AVATARS]


class BoardPulse(Entity):
    """Tickets per lane now, and open / done over the last minute, sampled by a periodic job."""

    model_config = {"scope": "global"}

    todo: int = 0
    doing: int = 0
    done_now: int = 0
    open: list[int] = []
    done: list[int] = []

    @computed
    def open_line(self) -> str:
        return spark(self.open, max([*self.open, *self.done, 1]))

    @computed
    def done_line(self) -> str:
        return spark(self.done, max([*self.open, *self.done, 1]))

    @event
    def record(self, todo: int, doing: int, done: int) -> None:
        """One sample (what the job runs every two seconds)."""
        self.todo, self.doing, self.done_now = todo, doing, done
        self.open = [*self.open[-(PULSE_POINTS - 1):], todo + doing]
        self.done = [*self.done[-(PULSE_POINTS - 1):], done]


def spark(values: list[int], top: int) -> str:
    """The SVG ``points`` of a sparkline of ``values`` scaled to ``top``."""
    if len(values) == 1:
        values = values * 2
    step = SPARK_WIDTH / max(1, len(values) - 1)
    return " ".join(
        f"{i * step:.1f},{SPARK_HEIGHT - 4 - v * (SPARK_HEIGHT - 8) / top:.1f}" for i, v in enumerate(values)
    )


ADJECTIVES = ("Amber", "Brisk", "Calm", "Dapper", "Eager", "Fuzzy", "Gentle", "Jolly", "Lucky",
              "Mellow", "Nimble", "Quiet", "Rapid", "Sunny", "Witty", "Zesty")
ANIMALS = ("Otter", "Heron", "Lynx", "Panda", "Falcon", "Badger", "Koala", "Marten", "Puffin",
           "Gecko", "Bison", "Ibis", "Raven", "Tapir", "Walrus", "Yak")
PALETTE = ("#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#4d7c0f")


def nickname(session_id: str) -> str:
    """A stable, friendly name for a browser session ("Sunny Otter")."""
    digest = hashlib.sha256(session_id.encode()).digest()
    return f"{ADJECTIVES[digest[0] % len(ADJECTIVES)]} {ANIMALS[digest[1] % len(ANIMALS)]}"


def colour_of(name: str) -> str:
    return PALETTE[hashlib.sha256(name.encode()).digest()[0] % len(PALETTE)]


SAMPLE_TICKETS: tuple[tuple[str, Lane, int], ...] = (
    ("Sign-up page copy", Lane.todo, 2),
    ("Invoice PDF export", Lane.todo, 5),
    ("Dark mode for emails", Lane.todo, 3),
    ("Search by SKU", Lane.doing, 3),
    ("Stock alerts", Lane.doing, 5),
    ("Checkout in one step", Lane.done, 8),
    ("Product photos upload", Lane.done, 3),
)
"""What a first start puts on an empty board."""


async def seed_tickets(sm: StarModel) -> int:
    """Fill an empty board with ``SAMPLE_TICKETS``; returns how many were added."""
    try:
        async with sm.dispatcher.uow_factory(Ticket) as uow:
            if await uow.list(Ticket, limit=1):
                return 0
            for title, lane, points in SAMPLE_TICKETS:
                uow.add(Ticket(title=title, lane=lane, points=points))
            await uow.commit(CallContext(session_id="server"))
    except StarModelError as exc:  # the database is down: the rest of the demo still runs
        log.error("demo: sample tickets not added: %s", exc)
        return 0
    return len(SAMPLE_TICKETS)


async def sample_board(sm: StarModel) -> None:
    """The periodic job: count the tickets per lane, record a point of the pulse."""
    tickets = await sm.list(Ticket, limit=1000)
    counts = {lane.value: sum(1 for t in tickets if t.lane == lane) for lane in Lane}
    await sm.call(BoardPulse, "record", **counts)


def follow_board(sm: StarModel) -> None:
    """Write the feed after each committed ticket change, naming who made it."""

    async def on_change(change: EntityChanged) -> None:
        if change.namespace != Ticket.namespace() or change.deleted:
            return
        if change.origin_session in (None, "server"):  # seeded at start, not somebody's move
            return
        if not change.created and "lane" not in change.changes:
            return
        who = nickname(change.origin_session)
        title = change.changes.get("title")
        if title is None:
            ticket = await sm.find(Ticket, change.key)
            title = ticket.title if ticket is not None else f"#{change.key}"
        if change.created:
            text = f"{who} added “{title}”"
        else:
            text = f"{who} moved “{title}” to {LANE_TITLES[Lane(change.changes['lane'])]}"
        try:
            await sm.call(BoardFeed, "note", text=text, who=who)
        except StarModelError as exc:  # e.g. Redis down: the move itself is saved
            log.warning("board feed not written: %s", exc)

    sm.subscribe(EntityChanged, on_change)


# --- views ------------------------------------------------------------------------------


def ticket_row(ticket: Ticket) -> Any:
    """A card of the board. Its lane is a signal (``$ticket.<id>.lane``): the board's CSS grid
    puts the card in its lane's column, so a move anywhere slides it over, live."""
    sig = ticket.sig
    return Li(
        ticket,
        Div(
            Span(ticket.title, data.text(sig.title), cls="sc-ticket-title"),
            Span(str(ticket.points), data.text(sig.points), cls="sc-points", title="points"),
            cls="sc-ticket-top",
        ),
        Div(
            *[
                PlainButton(LANE_TITLES[lane], data.on("click", ticket.move(lane.value)),
                       data.attr({"disabled": f"{sig.lane} == '{lane.value}'"}),
                            cls="sc-move", data_testid=f"move-{lane.value}", type="button",
                            disabled=ticket.lane == lane)
                for lane in Lane
            ],
            cls="sc-moves",
        ),
        data.attr({"data-lane": sig.lane}),
        id=ticket.dom_id(),
        data_lane=ticket.lane.value,
        cls="sc-ticket",
        data_testid="ticket",
    )


BOARD_STYLES = """
.sc-board{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:.75rem}
.sc-lane-head{font-weight:600;font-size:.9rem;display:flex;justify-content:space-between;
  padding:.25rem .25rem .5rem;border-bottom:2px solid hsl(var(--border))}
.sc-lanes{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));grid-auto-flow:row dense;
  gap:.6rem .75rem;list-style:none;padding:0;margin:.6rem 0 0}
.sc-ticket{border:1px solid hsl(var(--border));border-left:4px solid hsl(var(--primary));
  background:hsl(var(--card));border-radius:.55rem;padding:.55rem .65rem;
  box-shadow:0 1px 2px rgb(0 0 0/.06);animation:sc-pop .35s ease-out}
.sc-ticket[data-lane=todo]{grid-column:1;border-left-color:#64748b}
.sc-ticket[data-lane=doing]{grid-column:2;border-left-color:#f59e0b}
.sc-ticket[data-lane=done]{grid-column:3;border-left-color:#10b981}
.sc-ticket[data-lane=done] .sc-ticket-title{text-decoration:line-through;opacity:.7}
.sc-ticket-top{display:flex;justify-content:space-between;gap:.5rem;font-size:.875rem}
.sc-points{font-size:.7rem;font-weight:700;min-width:1.4rem;height:1.4rem;border-radius:999px;
  display:grid;place-items:center;background:hsl(var(--muted));color:hsl(var(--muted-foreground))}
.sc-moves{display:flex;gap:.25rem;margin-top:.4rem;flex-wrap:wrap}
.sc-move{font-size:.7rem;padding:.1rem .45rem;border-radius:.35rem;border:1px solid hsl(var(--border));
  background:transparent;color:hsl(var(--foreground));cursor:pointer}
.sc-move:hover:not([disabled]){border-color:hsl(var(--primary));color:hsl(var(--primary))}
.sc-move[disabled]{display:none}
@keyframes sc-pop{from{transform:scale(.97);opacity:.4}to{transform:none;opacity:1}}
.sc-avatars{display:flex;align-items:center}
.sc-avatar{width:2.1rem;height:2.1rem;border-radius:999px;display:grid;place-items:center;
  color:#fff;font-size:.75rem;font-weight:700;border:2px solid hsl(var(--background));
  margin-left:-.45rem}
.sc-avatar:first-child{margin-left:0}
.sc-feed{list-style:none;padding:0;margin:0;font-size:.82rem}
.sc-feed li{padding:.3rem 0;border-bottom:1px solid hsl(var(--border))}
.sc-feed li:last-child{border-bottom:0}
.sc-feed li:empty,.sc-avatar:empty{display:none}
.sc-feed:has(li:not(:empty))+.sc-feed-empty{display:none}
.sc-board-side{display:grid;gap:1rem;grid-template-columns:minmax(0,1fr)}
.sc-board-wrap{display:grid;gap:1rem;grid-template-columns:minmax(0,1fr)}
@media (min-width:1024px){.sc-board-wrap{grid-template-columns:minmax(0,3fr) minmax(0,1fr)}}
@media (max-width:640px){
  .sc-board{display:none}
  .sc-lanes{grid-template-columns:minmax(0,1fr)}
  .sc-ticket[data-lane]{grid-column:1}
  .sc-ticket::before{content:attr(data-lane);float:right;font-size:.65rem;text-transform:uppercase;
    letter-spacing:.05em;color:hsl(var(--muted-foreground));margin-left:.5rem}
}
"""


def board_view(sm: StarModel, tickets: list[Ticket], feed: BoardFeed | None, pulse: BoardPulse,
               me: str) -> Any:
    """The whole board: lanes, add box, who is here, the feed and the pulse."""
    counts = {lane: sum(1 for t in tickets if t.lane == lane) for lane in Lane}
    add = Ticket.create()
    lanes = Div(
        Div(
            *[Div(Span(LANE_TITLES[lane]),
                  Span(str(counts[lane]), data.text(BoardPulse.sig[LANE_COUNTS[lane]]),
                       cls=TextPresets.muted_sm, id=f"lane-count-{lane.value}"),
                  cls="sc-lane-head") for lane in Lane],
            cls="sc-board",
        ),
        sm.live_list(Ticket, tickets, tag=Ul, cls="sc-lanes"),
    )
    add_form = Form(
        Input(type="text", placeholder="New ticket, e.g. “Gift cards”", id="ticket-new", cls="uk-input grow",
              maxlength=str(TITLE_MAX), autocomplete="off", **{"data-bind": "ticket.new_ticket"}),
        Button("Add", type="submit", id="ticket-add", cls=ButtonT.primary),
        data.on("submit", add).prevent,
        cls="flex gap-2",
    )
    side = Div(
        who_is_here(feed, me),
        feed_card(feed),
        pulse_card(pulse),
        cls="sc-board-side",
    )
    return Div(
        Div(Card(add_form, Span(id="ticket-error", cls="text-sm text-red-600",
                                **{"data-text": "$ticket._errors?.new_ticket ?? ''"}), lanes),
            cls="min-w-0"),
        side,
        cls="sc-board-wrap",
    )


def who_is_here(feed: BoardFeed | None, me: str) -> Any:
    if feed is None:
        return Card(P("The board's feed is kept in Redis, which cannot be reached right now.",
                      cls=TextPresets.muted_sm), header=H3("Who is here"))
    sig = BoardFeed.sig
    avatars = [
        Span(
            feed.initials[i],
            data.text(f"{sig.initials}[{i}]"),
            data.attr({"style": f"'background:' + {sig.colours}[{i}]", "title": f"{sig.names}[{i}]"}),
            style=f"background:{feed.colours[i]}", title=feed.names[i], cls="sc-avatar", data_testid="avatar",
        )
        for i in range(AVATARS)
    ]
    return Card(
        feed,
        Div(*avatars, cls="sc-avatars", id="board-people"),
        P("You are ", Span(me, style=f"color:{colour_of(me)};font-weight:600", id="board-me"),
          ". Move a card: your avatar joins the row.", cls="text-sm mt-2"),
        header=H3("Who is here"),
    )


def feed_card(feed: BoardFeed | None) -> Any:
    if feed is None:
        return ""
    sig = BoardFeed.sig
    lines = [Li(feed.shown[i], data.text(f"{sig.shown}[{i}]")) for i in range(FEED_LINES)]
    return Card(
        Ul(*lines, cls="sc-feed", id="board-feed"),
        P("Nothing yet: move a card.", cls=f"sc-feed-empty {TextPresets.muted_sm}"),
        header=H3("Activity"),
    )


def pulse_card(pulse: BoardPulse) -> Any:
    sig = BoardPulse.sig
    return Card(
        pulse,
        Svg(
            Polyline(points=pulse.open_line, fill="none", stroke="#f59e0b", stroke_width="2.5",
                     stroke_linejoin="round", id="pulse-open", **{"data-attr:points": sig.open_line}),
            Polyline(points=pulse.done_line, fill="none", stroke="#10b981", stroke_width="2.5",
                     stroke_linejoin="round", id="pulse-done", **{"data-attr:points": sig.done_line}),
            viewBox=f"0 0 {SPARK_WIDTH} {SPARK_HEIGHT}", cls="w-full", style="height:4rem",
            preserveAspectRatio="none",
        ),
        Div(Span("■ open", style="color:#f59e0b"), Span("■ done", style="color:#10b981"),
            Span("sampled every 2 s by sm.every", style="opacity:.8"),
            style="display:flex;flex-wrap:wrap;gap:.35rem .9rem;font-size:.75rem;white-space:nowrap"),
        header=H3("Pulse"),
    )
