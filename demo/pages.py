"""The showcase's pages, and ``install_showcase``, which wires the whole demo into an app.

Every feature has a page of its own, its live widget beside the code that makes it (read from
the running module); ``/board`` puts several together; ``/lab`` keeps every widget on one page
(handy to try things out, and what the end-to-end tests drive).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from datastar_py import attribute_generator as data
from fasthtml.common import A, B, Code, Div, Li, P, Span, Ul
from monsterui.all import H1, H2, H3, Button, ButtonT, Card, DivLAligned, Grid, TextPresets
from starlette.requests import Request

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
from demo.board import (
    BOARD_STYLES,
    BoardFeed,
    BoardPulse,
    Ticket,
    board_view,
    follow_board,
    nickname,
    sample_board,
    seed_tickets,
    ticket_row,
)
from demo.files import install_files
from demo.journal import Whiteboard, history_card, install_journal, whiteboard_card
from demo.layout import code_panel, feature, install_styles, page, tiles
from demo.presence import install_presence
from demo.products import (
    DEMO_ADMIN_EMAIL,
    Product,
    ProductViews,
    demo_admin_password,
    install_shop,
    shop_links,
)
from demo.state import Counter, LongTask, SharedCounter, counter_card, shared_card, task_card
from demo.todos import Todo, seed_todos, todo_card, todo_row
from starmodel import StarModel, StarModelError, StoreUnavailable
from starmodel.contrib.auth import Auth

__all__ = ["PAGES", "TODOS_SHOWN", "install_showcase"]

log = logging.getLogger("demo")

TODOS_SHOWN = 200
"""The todo list shows the first todos, in the order they were added."""
TICKETS_SHOWN = 300

PAGES: tuple[tuple[str, str, str], ...] = (
    ("/board", "Live team board",
     "SQL records, a shared feed, who is here and a chart from a job, together."),
    ("/presence", "Presence", "Who else is looking at a ticket right now, in every browser and process."),
    ("/state", "Session & global state", "One counter per browser, one for everybody: live in every tab."),
    ("/streaming", "Streaming & background work",
     "Progress that streams while an event runs, and jobs that outlive the tab."),
    ("/records", "SQL records, live", "Rows added, ticked and deleted in one browser appear in all of them."),
    ("/redis", "Redis entities with a TTL",
     "State shared by every server process, forgotten when it expires."),
    ("/preferences", "Browser-stored preferences",
     "Kept in localStorage, checked by the server before each use."),
    ("/actions", "Server actions", "Toasts, alerts, scripts, signal patches and redirects from Python."),
    ("/crud", "Generated CRUD & admin", "Forms, lists, a JSON API and an admin, from one entity class."),
    ("/files", "File uploads, live", "Chunked uploads with limits; every viewer sees the progress."),
    ("/journal", "Event journal & undo",
     "Who changed what, before and after, and undo of the latest change."),
    ("/auth", "Sign-in & permissions", "Accounts, sessions and per-event rules, with a staff-only admin."),
)
"""The feature pages, as the home page lists them: (path, title, one line)."""


def install_showcase(sm: StarModel) -> Auth:
    """Everything the demo serves, on ``sm``: the entities' live rows, the shop (accounts,
    ``/products``, the JSON API, ``/admin``), the activity feed, the board and its jobs, seeded
    data, and every page. Returns the app's ``Auth``."""
    sm.row_view(Todo)(todo_row)  # rows created anywhere are drawn in every open todo list
    sm.row_view(Ticket)(ticket_row)
    auth = install_shop(sm)
    follow_activity(sm)
    follow_board(sm)
    sm.every(1.0, Chart.sample)  # the live chart gets a point a second, for as long as the app runs

    seeded = asyncio.Event()  # the jobs start before the tables are made: the sampler waits

    @sm.every(2.0, name="demo.board.sample")
    async def sample() -> None:
        if not seeded.is_set():
            return
        try:
            await sample_board(sm)
        except StarModelError as exc:  # the database or Redis is down: the next tick tries again
            log.warning("demo: board not sampled: %s", exc)

    async def seed() -> None:
        await seed_todos(sm)
        await seed_tickets(sm)
        seeded.set()
        await sample()  # the board's counts are right from the first page on

    sm.startup_hooks.append(seed)
    install_styles(sm, BOARD_STYLES)
    install_journal(sm)
    _routes(sm, auth)
    install_files(sm, auth.user)
    install_presence(sm, auth)
    return auth


async def _feed(sm: StarModel, entity: Any) -> Any:
    try:
        return await sm.load(entity)
    except StoreUnavailable:  # Redis down: the rest of the page still works
        return None


def _routes(sm: StarModel, auth: Auth) -> None:
    app = sm.app

    @app.route("/")
    async def home(request: Request) -> Any:
        counter = await sm.load(Counter, request)
        shared = await sm.load(SharedCounter)
        hero = Div(
            Div(
                Span("Python · entities · live over SSE", cls="sc-pill"),
                H1("Write ", Span("entities", cls="sc-accent"), ". Get a live web app.", cls="mt-3"),
                P("StarModel is a Python web framework built on typed entities whose methods, marked "
                  "@event, are what the page calls. It serves the routes, validates input, stores the "
                  "state (memory, SQL, Redis or the browser) and pushes every change to each open tab. "
                  "No JavaScript to write; pages are FastHTML with MonsterUI.", cls="sc-lead mt-3"),
                Div(
                    A("Open the live board", href="/board", cls="uk-btn uk-btn-primary",
                      data_testid="cta-board"),
                    A("See the code", href="/state", cls="uk-btn uk-btn-default"),
                    A("Admin", href="/admin", cls="uk-btn uk-btn-ghost"),
                    cls="sc-cta",
                ),
                Ul(
                    Li(B("Stores: "), "memory, SQL (SQLite, PostgreSQL), Redis, the browser, or a plugin; "
                       "one unit of work per event."),
                    Li(B("Live: "), "one stream per tab, resynced after a reconnect, across server "
                       "processes with Redis."),
                    Li(B("Generated screens: "), "forms, lists, CRUD pages, a JSON API and an admin."),
                    Li(B("Safe by default: "), "validated input (4xx, state unchanged), signed sessions, "
                       "per-event permissions."),
                    cls="sc-points-list",
                ),
            ),
            Div(
                Div(code_panel(Counter), cls="sc-home-code"),
                Card(
                    counter, shared,
                    DivLAligned(
                        Div(Span(data.text(Counter.sig.count), id="home-counter", cls="text-2xl font-bold"),
                            P("yours", cls=TextPresets.muted_sm)),
                        Button("+1", data.on("click", Counter.increment()), cls=ButtonT.primary,
                               id="home-inc"),
                        Div(Span(data.text(SharedCounter.sig.count), id="home-shared",
                                 cls="text-2xl font-bold"),
                            P("everybody's", cls=TextPresets.muted_sm)),
                        Button("+1", data.on("click", SharedCounter.increment()), id="home-shared-inc"),
                        cls="gap-4 flex-wrap",
                    ),
                    P("That class, running: open a second browser and click.", cls=TextPresets.muted_sm),
                ),
                cls="space-y-3 min-w-0",
            ),
            cls="sc-hero",
        )
        return page(
            request, "StarModel", hero,
            H2("See each feature"),
            tiles(PAGES),
            P("Every widget on one page: ", A("the lab", href="/lab", cls="sc-accent"), ".",
              cls=TextPresets.muted_sm),
            user=await auth.user(request), wide_title="",
        )

    @app.route("/board")
    async def board(request: Request) -> Any:
        tickets = await sm.list(Ticket, limit=TICKETS_SHOWN)
        me = nickname(sm.session_id(request))
        return page(
            request, "Team board",
            P("A board two people can work on at once: open it in a second browser and move a card. "
              "Tickets are SQL rows, the feed and the avatars are a global entity (in Redis when "
              "REDIS_URL is set), the pulse is fed by a periodic job.", cls="sc-lead"),
            board_view(sm, tickets, await _feed(sm, BoardFeed), await sm.load(BoardPulse), me),
            H2("How it is made"),
            Div(code_panel(Ticket),
                Div(code_panel(BoardFeed), code_panel(follow_board), cls="space-y-4 min-w-0"),
                cls="sc-feature"),
            user=await auth.user(request),
        )

    @app.route("/state")
    async def state(request: Request) -> Any:
        return page(
            request, "Session & global state",
            P("The same kind of entity, two scopes. Open this page in another tab: your counter "
              "follows. Open it in another browser: only the shared one does.", cls="sc-lead"),
            feature("Per session", "A memory entity is per browser session by default: each "
                    "visitor has their own, kept across tabs and reloads.",
                    counter_card(await sm.load(Counter, request)), Counter),
            feature("Global", "scope='global': one instance for everybody; with REDIS_URL it lives "
                    "in Redis and every server process shares it.",
                    shared_card(await sm.load(SharedCounter)), SharedCounter),
            user=await auth.user(request),
        )

    @app.route("/journal")
    async def journal(request: Request) -> Any:
        return page(
            request, "Event journal & undo",
            P("An entity with model_config['journal'] keeps an entry per committed event: who, "
              "which event and parameters, and each changed field before and after. Undo puts the "
              "latest change back, unless a later one changed the same fields.", cls="sc-lead"),
            feature("A journaled whiteboard", "Write or paint it, here or in another browser; the "
                    "history follows live. Also: `starmodel entities history Whiteboard` and the "
                    "admin's History page.",
                    Div(whiteboard_card(await sm.load(Whiteboard)), history_card(), cls="space-y-4"),
                    Whiteboard),
            user=await auth.user(request),
        )

    @app.route("/streaming")
    async def streaming(request: Request) -> Any:
        return page(
            request, "Streaming & background work",
            P("An async-generator event streams every yield to the page; a background event answers "
              "at once and runs on, and every tab follows it, even one opened later.", cls="sc-lead"),
            feature("A task that streams", "Run it here; start the background one and close the tab: "
                    "reopen the page and it is still going.",
                    task_card(await sm.load(LongTask, request)), LongTask),
            feature("A job everybody watches", "A global background event with progress and cancel: "
                    "anybody can start it, every browser sees it, anybody can stop it.",
                    import_card(await sm.load(ImportJob)), ImportJob),
            feature("A chart fed by a periodic job", "sm.every(1.0, Chart.sample) adds a point every "
                    "second; the SVG line is a computed signal.",
                    chart_card(await sm.load(Chart)), Chart),
            user=await auth.user(request),
        )

    @app.route("/records")
    async def records(request: Request) -> Any:
        todos = await sm.list(Todo, limit=TODOS_SHOWN)
        return page(
            request, "SQL records, live",
            P("A SQL table (SQLite by default, PostgreSQL with DATABASE_URL). Open a second browser: "
              "rows added, ticked and deleted appear in both, in place.", cls="sc-lead"),
            feature("Todos", "Class events create rows; record events change one row; the live list "
                    "draws rows created anywhere with the registered row view.",
                    todo_card(sm, todos), Todo, todo_row),
            user=await auth.user(request),
        )

    @app.route("/redis")
    async def redis_page(request: Request) -> Any:
        activity = await _feed(sm, Activity)
        if SHARED_STORE.name == "SERVER_MEMORY":
            notice = Div(
                H3("Set REDIS_URL to see this in Redis"),
                P("No REDIS_URL was set, so this feed runs in this process's memory (with the same TTL). "
                  "Start the demo with ", Code("REDIS_URL=redis://127.0.0.1:6379/0 starmodel run demo"),
                  " and it is kept in Redis: shared by every server process, expiring ten minutes after "
                  "its last entry.", cls="mt-1"),
                cls="sc-note", id="redis-missing",
            )
        else:
            notice = Div(P("Kept in Redis (REDIS_URL is set): run a second server process and both "
                           "see the same feed."), cls="sc-note", id="redis-on")
        return page(
            request, "Redis entities with a TTL",
            P("What every process must share goes to Redis: a global entity with a TTL, written by a "
              "bus subscriber once per change, where the change happened.", cls="sc-lead"),
            notice,
            feature("Recent activity", "Click the shared counter or change a todo: a line appears "
                    "here, in every browser.",
                    Div(activity_card(activity), shared_card(await sm.load(SharedCounter)), cls="space-y-4"),
                    Activity, follow_activity),
            user=await auth.user(request),
        )

    @app.route("/preferences")
    async def preferences(request: Request) -> Any:
        return page(
            request, "Browser-stored preferences",
            P("A CLIENT_LOCAL entity lives in this browser's localStorage: it comes back after a "
              "reload, follows along in the browser's other tabs, and the server checks it before "
              "every use (tampered data is refused and reset).", cls="sc-lead"),
            feature("Preferences", "Type a name, pick a language, reload the page.",
                    preferences_card(await sm.load(Preferences, request)), Preferences),
            user=await auth.user(request),
        )

    @app.route("/actions")
    async def actions(request: Request) -> Any:
        arrived = request.query_params.get("from") == "redirect"
        return page(
            request, "Server actions",
            P("An event may return or yield actions: toasts, an alert, a script, a patch of "
              "signals, a redirect; a background event can yield them as it goes.", cls="sc-lead"),
            Div("You were redirected here by the server.", cls="sc-note", id="redirected") if arrived else "",
            feature("Every kind of action", "Each button runs one event.",
                    showcase_card(await sm.load(Showcase, request)), Showcase),
            user=await auth.user(request),
        )

    @app.route("/crud")
    async def crud(request: Request) -> Any:
        views = sm.views(Product, ProductViews)
        return page(
            request, "Generated CRUD & admin",
            P("One entity class gives the pages at /products (list with search, sort and pages; new; "
              "detail; edit), a JSON API described at /api/openapi.json, and a place in the admin. "
              "The list below is the generated one, in this page, live.", cls="sc-lead"),
            Div(
                A("Products", href="/products", cls="uk-btn uk-btn-primary", data_testid="crud-products"),
                A("New product", href="/products/new", cls="uk-btn uk-btn-default"),
                A("Admin", href="/admin", cls="uk-btn uk-btn-default"),
                A("OpenAPI", href="/api/openapi.json", cls="uk-btn uk-btn-ghost"),
                cls="sc-cta",
            ),
            feature("The catalogue", "Field types and constraints make the inputs; the policy says "
                    "who may read, create, edit and delete.",
                    Card(Div(await views.table_for(request), style="overflow-x:auto")),
                    Product, ProductViews),
            user=await auth.user(request),
        )

    @app.route("/auth")
    async def auth_page(request: Request) -> Any:
        user = await auth.user(request)
        password = ("from DEMO_ADMIN_PASSWORD" if os.environ.get("DEMO_ADMIN_PASSWORD")
                    else demo_admin_password())
        status = Card(
            P("Signed in as ", Span(user.email, cls="font-semibold"), id="auth-status") if user is not None
            else P("You are not signed in.", id="auth-status"),
            shop_links(user),
            P("The demo's staff account: ", Code(DEMO_ADMIN_EMAIL), " / ", Code(password),
              cls=TextPresets.muted_sm),
            header=H3("Your session"),
        )
        return page(
            request, "Sign-in & permissions",
            P("Auth(sm) adds accounts, sign-in and sign-out pages and a signed session; policies and "
              "allow= rules decide who may run which event. A sign-out ends every copy of the cookie.",
              cls="sc-lead"),
            feature("Who may do what", "Anybody browses products; signed-in users add and edit; only "
                    "staff delete, discount or open the admin.", status, install_shop, Product),
            user=user,
        )

    @app.route("/lab")
    async def lab(request: Request) -> Any:
        counter = await sm.load(Counter, request)
        shared = await sm.load(SharedCounter)
        task = await sm.load(LongTask, request)
        todos = await sm.list(Todo, limit=TODOS_SHOWN)
        activity = await _feed(sm, Activity)
        return page(
            request, "The lab: every widget",
            Grid(counter_card(counter), shared_card(shared), task_card(task), cols_lg=3, cols=1),
            Grid(todo_card(sm, todos), activity_card(activity), cols_lg=2, cols=1),
            Grid(
                preferences_card(await sm.load(Preferences, request)),
                import_card(await sm.load(ImportJob)),
                chart_card(await sm.load(Chart)),
                cols_lg=3, cols=1,
            ),
            showcase_card(await sm.load(Showcase, request)),
            user=await auth.user(request),
        )

