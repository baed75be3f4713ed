"""An in-process test client for StarModel apps: events go through the real HTTP path.

``EventClient(sm)`` runs the app's startup and shutdown (its ASGI lifespan) and is the first
browser session; every call is an HTTP request as Datastar sends it (``Datastar-Request``
header, same-origin ``Origin``, the session cookie, the tab id, a JSON signals body), made with
``httpx`` against ``sm.app`` in this process (``starmodel.testing.asgi``). The SSE answer is
read into a ``CallResult`` (``starmodel.testing.results``): merged signals, field errors,
fragments, toasts and other actions, one ``Step`` per ``yield`` of a streaming event.

Example::

    async with EventClient(sm) as client:
        result = await client.call(Counter.increment, amount=2)
        assert result.signals == {"counter": {"count": 2, "doubled": 4}}
        assert (await client.state(Counter)).count == 2
        other = client.session()                      # another browser
        async with other.watch() as seen:             # one of its tabs, live stream open
            await client.call(SharedCounter.increment)
        assert seen.signals == {"shared_counter": {"count": 1}}
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar, cast

import httpx
import itsdangerous
from starlette.requests import Request

from starmodel.adapters.driving.live.stream import LiveStream
from starmodel.adapters.driving.web.identity import SESSION_KEY
from starmodel.bootstrap import StarModel
from starmodel.core.entity import Entity
from starmodel.core.events import CANCEL_SUFFIX, BoundEvent
from starmodel.core.signals import JsExpr
from starmodel.testing.asgi import AsgiLifespan, AsgiTransport
from starmodel.testing.clock import FakeClock
from starmodel.testing.results import CallResult, Outputs, Step
from starmodel.testing.sse import SSEEvent, parse_sse

__all__ = ["BrowserSession", "EventClient", "LiveView"]

E = TypeVar("E", bound=Entity)

BASE_URL = "http://testserver"
_WATCH_LIMIT = 1_000_000  # a watching test tab is never dropped for reading late


class LiveView(Outputs):
    """What one tab received on its live stream while it was open (changes made by other
    tabs and sessions, background events' progress). Reading any attribute takes in what
    has arrived so far; ``await view.wait_for(...)`` waits for more.

    Attributes:
        initial: the signals the tab was given when its stream opened (the current state).
        session_id: the session of the tab.
        tab_id: the tab's id.
    """

    def __init__(self, stream: LiveStream, first: str) -> None:
        self._stream = stream
        self._messages: list[Step] = []
        self.initial = Step(parse_sse(first)).signals
        self.session_id = stream.session_id
        self.tab_id = stream.tab_id

    def _drain(self) -> list[Step]:
        self._messages.extend(Step(parse_sse(data.decode())) for data in self._stream.drain())
        return self._messages

    @property
    def messages(self) -> list[Step]:
        """One ``Step`` per message pushed to the tab (one per committed change it saw)."""
        return list(self._drain())

    @property
    def events(self) -> list[SSEEvent]:
        return [event for message in self._drain() for event in message.events]

    @property
    def closed(self) -> str | None:
        """Why the server ended the stream (e.g. ``"server stopping"``), or ``None``."""
        return self._stream.closed

    def clear(self) -> None:
        """Forget what was received so far (to look at what comes next only)."""
        self._drain()
        self._messages.clear()

    async def wait_for(
        self, predicate: Callable[[LiveView], bool] | None = None, *, timeout: float = 5.0
    ) -> LiveView:
        """Wait until ``predicate(view)`` holds (default: until one more message arrives);
        ``TimeoutError`` (saying what was received) if it does not within ``timeout`` s."""
        seen = len(self.messages)
        check = predicate or (lambda view: len(view.messages) > seen)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check(self):
            remaining = deadline - loop.time()
            if remaining <= 0 or self.closed:
                ended = f"the stream was closed ({self.closed})" if self.closed else f"within {timeout}s"
                raise TimeoutError(f"live view of tab {self.tab_id}: condition not met {ended}; "
                                   f"received {self.messages!r}")
            self._stream.wakeup.clear()
            if self._stream.pending:
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stream.wakeup.wait(), min(remaining, 0.05))
        return self

    def __repr__(self) -> str:
        return f"<LiveView tab={self.tab_id} messages={len(self.messages)} {self._summary()}>"


# --- sessions and the client -------------------------------------------------------------


class _AppConnection:
    """What every session of one ``EventClient`` shares: the app, its transport, its state."""

    def __init__(self, sm: StarModel, base_url: str, timeout: float, lifespan: bool) -> None:
        self.sm = sm
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.lifespan = AsgiLifespan(sm.app, timeout=timeout) if lifespan else None
        self.transport = AsgiTransport(sm.app, state=self.lifespan.state if self.lifespan else None)
        self.sessions: list[BrowserSession] = []
        self.running = False

    def check_running(self) -> None:
        if not self.running:
            raise RuntimeError("the client is not open: use `async with EventClient(sm) as client:`")

    def resolve(self, event: Any, key: Any) -> tuple[str, str, str | None]:
        """``(method, path, key)`` of a call, refusing events this app does not serve;
        ``Job.run.cancel`` is the call that stops that background event."""
        if _is_cancel(event):
            bound = event.__self__
            if not bound.spec.background:
                raise TypeError(f"{bound.spec.name} is not a background event; only those can be cancelled")
            _, path, key = self.resolve(bound, key)
            return "post", path + CANCEL_SUFFIX, key
        if not isinstance(event, BoundEvent):
            raise TypeError(
                f"{event!r} is not an @event: pass one read from an entity class or record, "
                "e.g. Counter.increment or todo.toggle"
            )
        spec, owner = event.spec, event.owner
        name = f"{owner.__name__}.{spec.name}"
        table = self.sm.event_table()
        found = table.get((spec.method, spec.route_path(owner)))
        if found is None:
            served = sorted({cls.__name__ for cls, _ in table.values()})
            raise LookupError(
                f"{name} is not served by this app (no {spec.method.upper()} {spec.route_path(owner)}); "
                f"it serves the events of: {', '.join(served) or 'no entity'}"
            )
        served_cls, _ = found
        if served_cls is not owner:
            raise LookupError(
                f"{spec.route_path(owner)} runs {served_cls.__module__}.{served_cls.__qualname__}."
                f"{spec.name}, not {owner.__module__}.{owner.__qualname__}.{spec.name} (two entities "
                "share a namespace: call the one the app serves)"
            )
        if spec.on_class or owner.options().scope != "id":
            if key is not None:
                what = "an event of the class" if spec.on_class else f"per {owner.options().scope}"
                raise TypeError(f"{name} is {what}: it takes no _key")
            return spec.method, spec.route_path(owner), None
        if key is None:
            if event.instance is None:
                raise TypeError(
                    f"{name} is an event of one record: call it on a record "
                    f"(client.call(record.{spec.name})) or give _key=<its key>"
                )
            key = owner.route_key(event.instance)
            if key is None:
                raise TypeError(f"{name}: this {owner.__name__} is not saved yet, so it has no key")
        return spec.method, spec.route_path(owner), str(key)


class BrowserSession:
    """One browser (its own session cookie, so its own session id) with one tab, calling the
    app's events. Get more with ``client.session()``."""

    def __init__(self, connection: _AppConnection) -> None:
        self._conn = connection
        self.session_id = secrets.token_urlsafe(18)
        self.tab_id = _new_tab_id()
        self.http = httpx.AsyncClient(
            transport=connection.transport, base_url=connection.base_url, timeout=connection.timeout
        )
        """The underlying ``httpx.AsyncClient`` (cookies included), for hand-made requests."""
        self._cookie_name = _set_session_cookie(self.http, connection.sm, self.session_id)
        connection.sessions.append(self)

    @property
    def sm(self) -> StarModel:
        """The app under test."""
        return self._conn.sm

    def session(self) -> BrowserSession:
        """A new browser session: its own cookie, session id and tab."""
        return BrowserSession(self._conn)

    async def call(
        self,
        event: BoundEvent | Callable[[], Any],
        /,
        *,
        _signals: Mapping[str, Any] | None = None,
        _key: Any = None,
        _headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> CallResult:
        """Call an event as this session's tab does, and read the whole answer.

        ``event`` is read from a class (``Counter.increment``, ``Todo.create``) or from a
        record (``todo.toggle``, whose key goes with the call); ``Job.run.cancel`` asks that
        background event to stop, as the action ``Job.run.cancel()`` does. ``params`` are the action's
        arguments (sent JSON-encoded in the query string, as Datastar actions do; names the
        event does not take are sent too, and refused by the server). Options, named with a
        leading ``_`` so they never clash with an event's parameters (which may not start
        with one):

        - ``_signals``: the page's signals, sent as the JSON body (parameters not given come
          from the entity's signals of the same name, e.g. ``{"counter": {"typed": 5}}``).
        - ``_key``: the record's key, for an event of one record read from its class.
        - ``_headers``: extra or replaced request headers.

        Raises ``TypeError`` for something that is not an event, or an event of one record
        called without one; ``LookupError`` for an event the app does not serve.
        """
        self._conn.check_running()
        method, path, key = self._conn.resolve(event, _key)
        query: dict[str, str] = {} if key is None else {"_key": key}
        for name, value in params.items():
            if isinstance(value, JsExpr):
                raise TypeError(f"{name}={value!s}: a browser expression cannot run here; pass its value")
            query[name] = json.dumps(value, separators=(",", ":"), default=str)
        body = json.dumps(dict(_signals or {}), separators=(",", ":"), default=str)
        headers = {
            "Datastar-Request": "true",
            "Origin": self._conn.base_url,
            "Sec-Fetch-Site": "same-origin",
            "X-StarModel-Tab": self.tab_id,
        }
        content: str | None = body
        if method in ("get", "delete"):
            query["datastar"], content = body, None
        else:
            headers["Content-Type"] = "application/json"
        headers.update(_headers or {})
        request = self.http.build_request(
            method.upper(), path, params=query, content=content, headers=headers
        )
        try:
            async with asyncio.timeout(self._conn.timeout):
                response = await self.http.send(request)
        except TimeoutError:
            raise TimeoutError(
                f"{_event_name(event)}: no complete answer within {self._conn.timeout}s"
            ) from None
        self._follow_session_cookie(response)
        parts = cast(list[bytes], response.extensions.get("parts", [response.content]))
        return CallResult(_event_name(event), response, parts)

    async def state(self, entity_cls: type[E]) -> E:
        """This session's instance of a session entity (or the global one), from the store."""
        self._conn.check_running()
        return await self._conn.sm.load(entity_cls, self._request())

    async def record(self, entity_cls: type[E], key: Any) -> E | None:
        """The record with ``key`` as this session may see it (``None`` if there is none, or
        it is another session's private record)."""
        self._conn.check_running()
        return await self._conn.sm.find(entity_cls, key, self._request())

    async def records(self, entity_cls: type[E], *, offset: int = 0, limit: int = 50) -> list[E]:
        """Records in key order (a private entity's: this session's own)."""
        self._conn.check_running()
        return await self._conn.sm.list(entity_cls, self._request(), offset=offset, limit=limit)

    @asynccontextmanager
    async def watch(
        self, *records: type[Entity], own_tab: bool = False, here: Iterable[tuple[type[Entity], Any]] = ()
    ) -> AsyncIterator[LiveView]:
        """A tab of this session with its live stream open for the block: the ``LiveView``
        collects what the stream carries (changes of global entities, of this session's
        entities made by its other tabs, background events' progress; with ``records``, the
        changes to those record classes a live list shows). The tab is a new one, so it
        sees what this session's calls change; with ``own_tab=True`` it is the tab that
        makes this session's calls, which is not sent its own changes again. ``here``:
        ``(class, key)`` pairs the tab's page shows; it is one of their viewers (presence)
        while the block runs."""
        self._conn.check_running()
        sm = self._conn.sm
        unknown = [cls.__name__ for cls in records if cls not in sm.entities() or cls.options().scope != "id"]
        if unknown:
            raise LookupError(f"watch(): {', '.join(unknown)} is not a record class this app serves")
        tab = self.tab_id if own_tab else _new_tab_id()
        stream, body = sm.open_live_stream(
            self.session_id, tab, watch=records, backlog=_WATCH_LIMIT, here=here
        )
        try:
            first = await anext(body)
        except StopAsyncIteration:
            raise RuntimeError("the app's live streams are closed (it is stopping)") from None
        try:
            await sm.presence.idle()  # the tab is one of the viewers of what it shows (``here``)
            yield LiveView(stream, first)
        finally:
            await body.aclose()
            await sm.presence.idle()

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until no event runs on in the background (``background=True`` events,
        streaming events still going); ``TimeoutError`` if some still run after ``timeout`` s
        (real seconds: with a fake clock, ``advance`` it first so that the runs can end)."""
        await self._conn.sm.dispatcher.wait_until_idle(timeout)
        await asyncio.sleep(0)  # let done-callbacks and deliveries scheduled by them run

    def _request(self) -> Request:
        """A request of this session, for ``sm.load`` / ``sm.find`` / ``sm.list``."""
        return Request({"type": "http", "headers": [], "session": {SESSION_KEY: self.session_id}})

    def _follow_session_cookie(self, response: httpx.Response) -> None:
        """If the server started another session (it refused the cookie), follow it."""
        value = response.cookies.get(self._cookie_name) if self._cookie_name else None
        if value:
            session_id = _read_session_id(value)
            if session_id:
                self.session_id = session_id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} session={self.session_id} tab={self.tab_id}>"


class EventClient(BrowserSession):
    """Test client of a StarModel app, in process: ``async with EventClient(sm) as client``
    starts the app (its lifespan: database tables, bus...) and stops it at the end. The
    client is the first browser session; ``client.session()`` opens others.

    Args:
        sm: the app (``StarModel(...)``).
        base_url: the origin requests come from (and go to).
        timeout: seconds a call, startup or shutdown may take.
        lifespan: run the app's startup and shutdown (``False``: the app is started elsewhere).
        fake_clock: give the app a ``FakeClock``: ``starmodel.sleep`` in events and periodic
            jobs (``sm.every``) then wait until ``client.advance(seconds)`` moves it.
    """

    def __init__(
        self,
        sm: StarModel,
        *,
        base_url: str = BASE_URL,
        timeout: float = 10.0,
        lifespan: bool = True,
        fake_clock: bool = False,
    ) -> None:
        if not isinstance(sm, StarModel):
            raise TypeError(f"EventClient needs a StarModel app, not {type(sm).__name__}")
        super().__init__(_AppConnection(sm, base_url, timeout, lifespan))
        self.clock: FakeClock | None = FakeClock() if fake_clock else None
        """The app's fake clock (``fake_clock=True``), else ``None``."""

    async def advance(self, seconds: float) -> None:
        """Move the app's fake clock ``seconds`` on: the sleeps due on the way end in order,
        and each woken run goes on until it sleeps again or ends (see ``FakeClock``)."""
        self._conn.check_running()
        if self.clock is None:
            raise RuntimeError("advance() needs a fake clock: EventClient(sm, fake_clock=True)")
        await self.clock.advance(seconds)

    async def wait_for_runs(self, timeout: float = 5.0) -> None:
        """Wait until the app's background and streaming runs have ended (``settle``)."""
        await self.settle(timeout)

    async def __aenter__(self) -> EventClient:
        if self._conn.running:
            raise RuntimeError("this EventClient is open already")
        if self.clock is not None:  # before the startup: periodic jobs start sleeping then
            self._conn.sm.dispatcher.clock = self.clock
            self._conn.sm.jobs.clock = self.clock
        if self._conn.lifespan is not None:
            await self._conn.lifespan.start()
        self._conn.running = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._conn.running = False
        try:
            leftover = self._conn.sm.dispatcher.running_tasks()
            for task in leftover:  # background work a test left running: stopped, not awaited for
                task.cancel()
            if leftover:
                await asyncio.wait(leftover, timeout=self._conn.timeout)
            for session in self._conn.sessions:
                await session.http.aclose()
        finally:
            if self._conn.lifespan is not None:
                await self._conn.lifespan.stop()


def _is_cancel(event: Any) -> bool:
    """``Job.run.cancel`` (the bound method), as passed to ``client.call``."""
    return inspect.ismethod(event) and isinstance(event.__self__, BoundEvent) and (
        event.__func__ is BoundEvent.cancel
    )


def _event_name(event: Any) -> str:
    bound = event.__self__ if _is_cancel(event) else event
    name = f"{bound.owner.__name__}.{bound.spec.name}"
    return f"{name}.cancel" if bound is not event else name


def _new_tab_id() -> str:
    return "test-" + secrets.token_hex(6)


def _set_session_cookie(http: httpx.AsyncClient, sm: StarModel, session_id: str) -> str | None:
    """Give the browser a signed session cookie for ``session_id`` (the format of Starlette's
    session middleware and StarModel's); returns the cookie's name."""
    secret = getattr(sm.app, "secret_key", None)
    name = getattr(sm.app, "session_cookie", None)
    if not secret or not isinstance(name, str):
        return None  # no known session middleware: the server starts a session on first call
    payload = base64.b64encode(json.dumps({SESSION_KEY: session_id}).encode("utf-8"))
    # stored as the server's own cookie would be (a dotless host is "<host>.local" in the
    # cookie jar), so the one the server sets later, at a sign-in for instance, replaces it
    host = http.base_url.host or ""
    signed = itsdangerous.TimestampSigner(str(secret)).sign(payload).decode("latin-1")
    http.cookies.set(name, signed, domain=host if "." in host else f"{host}.local")
    return name


def _read_session_id(cookie: str) -> str | None:
    try:
        data = json.loads(base64.b64decode(cookie.split(".", 1)[0]))
    except ValueError:
        return None
    value = data.get(SESSION_KEY) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
