"""SQL entities through the real ASGI app, on SQLite and on PostgreSQL (``database_url`` is
parametrized in conftest.py). What the database holds is checked directly with SQLAlchemy."""

import asyncio
import json
import threading
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fasthtml.common import Div, Span
from integration_support import (
    DATASTAR,
    field_errors,
    open_stream,
    parse_sse,
    post_event,
    serve,
    signals_of,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import Field

from starmodel import ConfigurationError, Entity, EntityChanged, StarModel, event
from starmodel.adapters.driven.stores.sql import normalize_url

with warnings.catch_warnings():
    # FastSQLModel's BaseTable uses pydantic's deprecated json_encoders: its warning, not ours
    warnings.simplefilter("ignore", DeprecationWarning)
    from FastSQLModel import db as fastsqlmodel_db
    from FastSQLModel.db import BaseTable


class Todo(Entity, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(min_length=1, max_length=100, unique=True)
    done: bool = False
    count: int = 0

    @event
    def toggle(self):
        self.done = not self.done

    @event
    def increment(self):
        self.count += 1

    @event
    def remove(self):
        Todo.records.delete(self)

    @event
    def create(cls, title: str):
        cls.records.add(Todo(title=title))

    @event
    async def change_two_then_fail(cls, first: int, second: int):
        a = await cls.records.get(first)
        b = await cls.records.get(second)
        a.count += 1
        b.title = b.title + " (changed)"
        raise ValueError("changed my mind")

    @event
    async def count_and_rename(cls, first: int, second: int, title: str):
        """The first row is saved at commit, then the second fails (its new title is taken)."""
        a = await cls.records.get(first)
        b = await cls.records.get(second)
        a.count += 1
        b.title = title


class Product(Entity, BaseTable, table=True):
    name: str
    price: float = 0

    @event
    def create(cls, name: str, price: float = 0):
        cls.records.add(Product(name=name, price=price))

    @event
    def reprice(self, price: float):
        self.price = price

    @event
    def remove(self):
        Product.records.delete(self)


class Counter(Entity):  # a memory entity beside the SQL ones
    model_config = {"namespace": "it_counter"}
    count: int = 0

    @event
    def increment(self):
        self.count += 1


ENTITIES = [Todo, Product, Counter]


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def make_app(tmp_path) -> Callable[..., StarModel]:
    def make(**options: Any) -> StarModel:
        options.setdefault("migrations_dir", str(tmp_path / "no-migrations"))
        return StarModel(entities=ENTITIES, secret_key="integration", **options)

    return make


@pytest.fixture
async def sm(make_app, database_url) -> AsyncIterator[StarModel]:
    """The app, started (its tables created at startup) and stopped around the test."""
    app = make_app(database_url=database_url)
    async with app.app.router.lifespan_context(app.app):
        yield app


@pytest.fixture
async def client(sm) -> AsyncIterator[httpx.AsyncClient]:
    async with new_client(sm) as c:
        yield c


@pytest.fixture
async def db(database_url) -> AsyncIterator[AsyncEngine]:
    """A connection of our own to the test database (not the app's engine)."""
    engine = create_async_engine(normalize_url(database_url))
    try:
        yield engine
    finally:
        await engine.dispose()


def new_client(sm: StarModel) -> httpx.AsyncClient:
    """A browser of its own (its own session cookie), talking to the app in-process."""
    transport = httpx.ASGITransport(app=sm.app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=20)


async def fetch(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(text(sql), params)
        return [dict(row) for row in result.mappings().all()]


async def todos(engine: AsyncEngine) -> list[dict[str, Any]]:
    return await fetch(engine, "SELECT id, title, done, count, sm_version FROM todo ORDER BY id")


async def post_key(client: httpx.AsyncClient, path: str, key: Any, **args: Any) -> httpx.Response:
    """An instance event: ``_key`` goes verbatim into the query, other arguments as JSON."""
    query = {"_key": str(key), **{name: json.dumps(value) for name, value in args.items()}}
    return await client.post(path, params=query, headers=DATASTAR, json={})


async def create_todo(client: httpx.AsyncClient, title: str) -> str:
    """Create a todo through HTTP; returns its key (from the answer's signals)."""
    answer = await post_event(client, "/todo/create", title=title)
    assert answer.status_code == 200, answer.text
    (patch,) = signals_of(answer.text)
    keys = [k for k in patch["todo"] if k != "_errors"]
    assert len(keys) == 1, patch
    return keys[0]


def state_of(text: str) -> dict[str, Any]:
    """The signals of an answer without the ``_errors`` a successful event clears."""
    (patch,) = signals_of(text)
    return {ns: {k: v for k, v in values.items() if k != "_errors"} for ns, values in patch.items()}


def error_message(answer: httpx.Response) -> str:
    return answer.headers.get("x-starmodel-error", "")


class Recorder:
    """Collects the ``EntityChanged`` facts the app publishes."""

    def __init__(self, sm: StarModel) -> None:
        self.seen: list[EntityChanged] = []
        sm.subscribe(EntityChanged, self.handle)

    async def handle(self, fact: EntityChanged) -> None:
        self.seen.append(fact)

    async def sees_a_commit(self, client: httpx.AsyncClient, key: str) -> None:
        """The control: a successful event on ``key`` is published (so silence meant something)."""
        assert (await post_key(client, "/todo/toggle", key)).status_code == 200
        async with asyncio.timeout(2):
            while not self.seen:
                await asyncio.sleep(0.01)
        assert [(fact.namespace, fact.key, fact.changes) for fact in self.seen] == [
            ("todo", key, {"done": True})
        ]


# --- concurrency -------------------------------------------------------------------------------


async def test_200_concurrent_increments_of_one_row_all_count(sm, client, db):
    key = await create_todo(client, "popular")
    async with asyncio.timeout(40):
        answers = await asyncio.gather(*(post_key(client, "/todo/increment", key) for _ in range(200)))
    assert sorted({a.status_code for a in answers}) == [200]
    (row,) = await todos(db)
    assert (row["count"], row["sm_version"]) == (200, 201)


async def test_two_apps_on_one_database_lose_no_increment(make_app, database_url, db):
    """Two processes (two apps, each with its own locks and engine) on one database: the
    version column makes every conflicting write fail and re-run, so none is lost."""
    first, second = make_app(database_url=database_url), make_app(database_url=database_url)
    async with asyncio.timeout(40), first.app.router.lifespan_context(first.app), \
            second.app.router.lifespan_context(second.app), new_client(first) as a, new_client(second) as b:
        key = await create_todo(a, "shared")
        answers = await asyncio.gather(
            *(post_key(client, "/todo/increment", key) for _ in range(60) for client in (a, b))
        )
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {200, 409}, {a.headers.get("x-starmodel-error") for a in answers}
    (row,) = await todos(db)
    assert row["count"] == statuses.count(200) and row["sm_version"] == row["count"] + 1
    assert statuses.count(200) >= 100, statuses.count(409)  # retries absorb nearly every conflict


# --- rollback ----------------------------------------------------------------------------------


async def test_an_event_that_changes_two_rows_then_raises_changes_nothing(sm, client, db):
    first = await create_todo(client, "first")
    second = await create_todo(client, "second")
    before = await todos(db)
    published = Recorder(sm)

    answer = await post_event(client, "/todo/change_two_then_fail", first=int(first), second=int(second))

    assert answer.status_code == 422
    assert "changed my mind" in error_message(answer)
    assert await todos(db) == before
    await asyncio.sleep(0.05)  # anything published would have arrived by now
    assert published.seen == []
    await published.sees_a_commit(client, first)


async def test_a_commit_failing_half_way_rolls_back_the_rows_already_written(sm, client, db):
    first = await create_todo(client, "first")
    second = await create_todo(client, "second")
    await create_todo(client, "taken")
    before = await todos(db)
    published = Recorder(sm)

    answer = await post_event(
        client, "/todo/count_and_rename", first=int(first), second=int(second), title="taken"
    )

    assert answer.status_code == 422, answer.text
    assert await todos(db) == before  # the first row's count was written, then rolled back
    await asyncio.sleep(0.05)
    assert published.seen == []
    await published.sees_a_commit(client, first)
    assert "title" in field_errors(answer.text, "todo"), answer.text


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("title", "message"), [("x" * 101, "at most 100"), ("", "at least 1")])
async def test_an_invalid_title_is_refused_with_its_field_error(sm, client, db, title, message):
    answer = await post_event(client, "/todo/create", title=title)
    assert answer.status_code == 422
    errors = field_errors(answer.text, "todo")
    assert message in errors.get("title", ""), answer.text
    assert await todos(db) == []


async def test_a_duplicate_unique_title_is_refused_naming_the_field(sm, client, db):
    await create_todo(client, "milk")
    answer = await post_event(client, "/todo/create", title="milk")
    assert answer.status_code == 422
    assert "title" in field_errors(answer.text, "todo"), answer.text
    assert [row["title"] for row in await todos(db)] == ["milk"]


@pytest.mark.parametrize(
    "key", ["999", "abc", "1.5", "", "%00", "-1", "2147483648", "99999999999999999999"]
)
async def test_an_unknown_or_malformed_key_is_404(sm, client, db, key):
    await create_todo(client, "milk")
    answer = await post_key(client, "/todo/toggle", key)
    assert answer.status_code == 404, answer.text
    assert [row["done"] for row in await todos(db)] == [False]


async def test_a_nul_character_in_a_title_is_stored_or_refused_never_503(sm, client, db):
    """PostgreSQL text cannot hold NUL: the input is bad (422), the database is fine."""
    answer = await post_event(client, "/todo/create", title="milk\x00")
    assert answer.status_code in (200, 422), (answer.status_code, error_message(answer))
    titles = [row["title"] for row in await todos(db)]
    assert titles == (["milk\x00"] if answer.status_code == 200 else [])


async def test_concurrent_creates_of_one_unique_title_make_one_row(make_app, database_url, db):
    first, second = make_app(database_url=database_url), make_app(database_url=database_url)
    async with asyncio.timeout(30), first.app.router.lifespan_context(first.app), \
            second.app.router.lifespan_context(second.app), new_client(first) as a, new_client(second) as b:
        answers = await asyncio.gather(
            *(post_event(client, "/todo/create", title="once") for _ in range(10) for client in (a, b))
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [422] * 19, {error_message(a) for a in answers}
    assert [row["title"] for row in await todos(db)] == ["once"]


async def test_a_missing_table_is_503_with_a_clear_message(sm, client, db):
    key = await create_todo(client, "milk")
    async with db.begin() as conn:
        await conn.execute(text("DROP TABLE todo"))
    for answer in (
        await post_event(client, "/todo/create", title="bread"),
        await post_key(client, "/todo/toggle", key),
    ):
        assert answer.status_code == 503, answer.text
        message = error_message(answer)
        assert "table is missing" in message and "todo" in message, message
        assert "starmodel migrate" in message
    # the memory entities are not affected
    assert (await post_event(client, "/it_counter/increment")).status_code == 200


UNREACHABLE = {
    "postgresql": "postgresql://postgres@127.0.0.1:1/test",
    "sqlite": "sqlite:////nonexistent-starmodel-dir/app.db",
}


@pytest.mark.parametrize("url", list(UNREACHABLE.values()), ids=list(UNREACHABLE))
async def test_an_unreachable_database_is_503_while_memory_entities_work(make_app, caplog, url):
    sm = make_app(database_url=url)
    async with asyncio.timeout(20), sm.app.router.lifespan_context(sm.app):  # starts anyway
        assert "database unreachable" in caplog.text
        async with new_client(sm) as client:
            for answer in (
                await post_event(client, "/todo/create", title="milk"),
                await post_key(client, "/todo/toggle", "1"),
                await post_event(client, "/product/create", name="pen"),
            ):
                assert answer.status_code == 503, answer.text
                assert "cannot be reached" in error_message(answer)
            counted = await post_event(client, "/it_counter/increment")
            assert counted.status_code == 200
            assert signals_of(counted.text) == [{"it_counter": {"count": 1}}]
        await sqlite_threads_finished()


async def sqlite_threads_finished() -> None:
    """aiosqlite hands a failed connection's close to its worker thread without waiting for
    it; let those threads finish while this test's event loop still runs (else they report
    to a closed loop, an error pytest pins on whichever test runs next)."""
    async with asyncio.timeout(5):
        while any("_connection_worker_thread" in t.name for t in threading.enumerate()):
            await asyncio.sleep(0.01)


BAD_URLS = ["nonsense://", "nonsense://user@host/db", "not a url at all"]


@pytest.mark.parametrize("via", ["argument", "environment"])
@pytest.mark.parametrize("url", BAD_URLS)
async def test_a_bad_database_url_is_one_clear_configuration_error(make_app, monkeypatch, via, url):
    """Refused when the app is built, or else when it starts: one ConfigurationError naming
    DATABASE_URL (never a traceback from deep inside SQLAlchemy)."""
    if via == "environment":
        monkeypatch.setenv("DATABASE_URL", url)
        build: Callable[[], StarModel] = make_app
    else:
        def build() -> StarModel:
            return make_app(database_url=url)
    try:
        sm = build()
    except ConfigurationError as exc:
        refused = exc
    else:
        with pytest.raises(ConfigurationError) as info:
            async with asyncio.timeout(10), sm.app.router.lifespan_context(sm.app):
                pass
        refused = info.value
    message = str(refused)
    assert "DATABASE_URL" in message and "\n" not in message, message
    assert refused.__cause__ is None
    assert refused.__context__ is None or refused.__suppress_context__


@pytest.mark.parametrize("url", BAD_URLS)
async def test_a_bad_database_url_never_answers_500(make_app, url):
    """Without the lifespan (as in-process test clients run an app), the first SQL event
    must not be a 500 either: the URL is refused when the app is built, or the event gets a
    clear 503."""
    try:
        sm = make_app(database_url=url)
    except ConfigurationError:
        return  # refused up front: the best outcome
    async with new_client(sm) as client:
        answer = await post_event(client, "/todo/create", title="milk")
        assert answer.status_code == 503, (answer.status_code, error_message(answer))
        assert "DATABASE_URL" in error_message(answer)
        assert (await post_event(client, "/it_counter/increment")).status_code == 200


# --- round trips -------------------------------------------------------------------------------


async def test_create_toggle_increment_delete_round_trip(sm, client, db):
    created = await post_event(client, "/todo/create", title="milk")
    assert created.status_code == 200
    (patch,) = signals_of(created.text)
    key = next(k for k in patch["todo"] if k != "_errors")
    assert patch["todo"][key] == {"id": int(key), "title": "milk", "done": False, "count": 0}
    assert await todos(db) == [{"id": int(key), "title": "milk", "done": False, "count": 0, "sm_version": 1}]

    toggled = await post_key(client, "/todo/toggle", key)
    assert signals_of(toggled.text) == [{"todo": {key: {"done": True}}}]
    counted = await post_key(client, "/todo/increment", key)
    assert signals_of(counted.text) == [{"todo": {key: {"count": 1}}}]
    assert await todos(db) == [{"id": int(key), "title": "milk", "done": True, "count": 1, "sm_version": 3}]

    removed = await post_key(client, "/todo/remove", key)
    assert removed.status_code == 200
    assert signals_of(removed.text) == [{"todo": {key: None}}]
    assert await todos(db) == []
    assert (await post_key(client, "/todo/toggle", key)).status_code == 404


async def test_base_table_entities_use_uuid_keys_and_starmodels_own_engine(sm, client, db, database_url):
    created = await post_event(client, "/product/create", name="pen", price=1.5)
    assert created.status_code == 200, created.text
    (patch,) = signals_of(created.text)
    key = next(k for k in patch["product"] if k != "_errors")
    assert str(uuid.UUID(key)) == key
    state = patch["product"][key]
    assert state["name"] == "pen" and state["price"] == 1.5 and state["created_at"]

    repriced = await post_key(client, "/product/reprice", key, price=2.25)
    assert repriced.status_code == 200, repriced.text
    changed = state_of(repriced.text)["product"][key]
    assert changed.pop("price") == 2.25
    assert set(changed) == {"updated_at"}  # BaseTable's updated_at follows every update

    (row,) = await fetch(db, "SELECT id, name, price, created_at, sm_version FROM product")
    assert str(uuid.UUID(str(row["id"]))) == key
    assert (row["name"], row["price"], row["sm_version"]) == ("pen", 2.25, 2)
    assert row["created_at"] is not None

    # the rows are in StarModel's database, through its own engine, not FastSQLModel's global one
    engine = sm.services.database.engine
    assert engine is not fastsqlmodel_db.db.engine
    assert engine.url.render_as_string(hide_password=False) == normalize_url(database_url)
    assert str(fastsqlmodel_db.db.engine.url) != str(engine.url)

    assert (await post_key(client, "/product/remove", key)).status_code == 200
    assert await fetch(db, "SELECT id FROM product") == []
    assert (await post_key(client, "/product/reprice", str(uuid.uuid4()), price=1)).status_code == 404
    assert (await post_key(client, "/product/reprice", "not-a-uuid", price=1)).status_code == 404


# --- live updates over a real socket -----------------------------------------------------------

LIVE = "/_starmodel/live"
WATCH_TODO = {"datastar": json.dumps({"smwatch": {"todo": True}})}


async def wait_for_streams(sm: StarModel, count: int) -> None:
    async with asyncio.timeout(5):
        while sm.hub.open_count() < count:
            await asyncio.sleep(0.01)


async def test_record_changes_reach_the_tabs_watching_the_record_class(make_app, database_url):
    sm = make_app(database_url=database_url)
    async with asyncio.timeout(30), serve(sm.app, stop=sm.hub.close_all) as url:
        watcher = httpx.AsyncClient(base_url=url, timeout=5)
        bystander = httpx.AsyncClient(base_url=url, timeout=5)
        author = httpx.AsyncClient(base_url=url, timeout=5)  # another session makes the changes
        async with watcher, bystander, author, \
                open_stream(watcher, LIVE, params=WATCH_TODO, headers=DATASTAR) as watching, \
                open_stream(bystander, LIVE, headers=DATASTAR) as not_watching:
            await wait_for_streams(sm, 2)
            await watching.next(comments=True)  # the initial state
            assert (await watching.next()).signals == {"todo": {}}  # ...and the watched list's
            await not_watching.next(comments=True)

            key = await create_todo(author, "milk")
            created = await watching.next()
            assert created.signals == {
                "todo": {key: {"id": int(key), "title": "milk", "done": False, "count": 0}}
            }

            assert (await post_key(author, "/todo/toggle", key)).status_code == 200
            assert (await watching.next()).signals == {"todo": {key: {"done": True}}}

            assert (await post_key(author, "/todo/remove", key)).status_code == 200
            deleted = await watching.next()
            assert deleted.signals == {"todo": {key: None}}
            removal = await watching.next()
            assert removal.type == "datastar-patch-elements"
            assert removal.values("selector") == [f"#todo-{key}"]
            assert removal.values("mode") == ["remove"]

            assert await not_watching.nothing_within(0.3)  # it never watched todo


async def test_a_tab_that_cannot_be_caught_up_gets_its_lists_redrawn(make_app, database_url):
    """After a gap the replay buffer cannot cover (here: an id of another server run), the
    resync sends every watched list as the database has it: values and rows."""
    sm = make_app(database_url=database_url)
    sm.row_view(Todo)(lambda todo: Div(Span(todo.title), id=todo.dom_id()))
    headers = {**DATASTAR, "Last-Event-ID": "0badc0de-7"}  # from a server long gone
    async with asyncio.timeout(30), serve(sm.app, stop=sm.hub.close_all) as url, \
            httpx.AsyncClient(base_url=url, timeout=5) as author, \
            httpx.AsyncClient(base_url=url, timeout=5) as tab:
        first = await create_todo(author, "milk")
        second = await create_todo(author, "bread")
        async with open_stream(tab, LIVE, params=WATCH_TODO, headers=headers) as stream:
            await stream.next(comments=True)  # session and global state
            values = await stream.next()
            assert set(values.signals["todo"]) == {first, second}
            assert values.signals["todo"][second]["title"] == "bread"
            rows = await stream.next()
            assert rows.type == "datastar-patch-elements"
            assert rows.values("selector") == ["#todo-list"]
            assert rows.values("mode") == ["inner"]
            assert f'id="todo-{first}"' in rows.elements and "bread" in rows.elements


async def test_the_sse_helpers_parse_error_answers():
    body = (
        'event: datastar-patch-signals\ndata: signals {"todo":{"_errors":{"title":"bad"}}}\n\n'
        ": ping\n\n"
        "event: datastar-patch-elements\ndata: selector #starmodel-toasts\ndata: mode append\n\n"
    )
    assert [e.type for e in parse_sse(body)] == ["datastar-patch-signals", "datastar-patch-elements"]
    assert field_errors(body, "todo") == {"title": "bad"}
