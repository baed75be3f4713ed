"""An in-process test client for StarModel apps: events go through the real HTTP path.

``EventClient(sm)`` runs the app's startup and shutdown (its ASGI lifespan) and is the first
browser session; every call is an HTTP request as Datastar sends it (``Datastar-Request``
header, same-origin ``Origin``, the session cookie, the tab id, a JSON signals body), made with
``httpx`` against ``sm.app`` in this process. The SSE answer is parsed into a ``CallResult``:
merged signals, field errors, fragments, toasts and other actions, one ``Step`` per
``yield`` of a streaming event.

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
import json
import re
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from typing import Any, TypeVar, cast
from urllib.parse import unquote

import httpx
import itsdangerous
from starlette.requests import Request

from starmodel.adapters.live_records import WATCH_SIGNAL
from starmodel.adapters.live_stream import LiveStream
from starmodel.adapters.web_fasthtml import SESSION_KEY, WebApp
from starmodel.core.actions import Action, Alert, Redirect, Script, Toast, ToastVariant
from starmodel.core.entity import Entity
from starmodel.core.events import BoundEvent
from starmodel.core.signals import JsExpr

__all__ = [
    "BrowserSession",
    "CallResult",
    "EventClient",
    "Fragment",
    "LiveView",
    "SSEEvent",
    "Step",
    "parse_sse",
]

E = TypeVar("E", bound=Entity)

BASE_URL = "http://testserver"
TOASTS_SELECTOR = "#starmodel-toasts"
ERROR_HEADER = "x-starmodel-error"
_WATCH_LIMIT = 1_000_000  # a watching test tab is never dropped for reading late


# --- Server-Sent Events ------------------------------------------------------------------


@dataclass(frozen=True)
class SSEEvent:
    """One Server-Sent Event: its ``event:`` type, ``id:`` and ``data:`` lines."""

    type: str
    data: tuple[str, ...] = ()
    id: str | None = None

    def values(self, name: str) -> list[str]:
        """The data lines of a Datastar field (``signals``, ``elements``, ``selector``...)
        without the field name."""
        prefix = name + " "
        return [line[len(prefix) :] for line in self.data if line.startswith(prefix)]

    def value(self, name: str) -> str | None:
        found = self.values(name)
        return "\n".join(found) if found else None


def parse_sse(text: str) -> list[SSEEvent]:
    """The events of an SSE body (comment-only blocks, e.g. keep-alives, are skipped)."""
    events: list[SSEEvent] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        kind, event_id, data, seen = "message", None, [], False
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            seen = True
            if name == "event":
                kind = value
            elif name == "id":
                event_id = value
            elif name == "data":
                data.append(value)
        if seen:
            events.append(SSEEvent(kind, tuple(data), event_id))
    return events


# --- what an answer showed ---------------------------------------------------------------


@dataclass(frozen=True)
class Fragment:
    """HTML patched into the page: by its id (``selector`` ``None``), or into ``selector``
    with ``mode`` (``outer``, ``inner``, ``append``, ``remove``...). ``str(fragment)`` is
    its HTML; ``"text" in fragment`` searches it."""

    html: str
    selector: str | None = None
    mode: str = "outer"

    def __str__(self) -> str:
        return self.html

    def __contains__(self, text: str) -> bool:
        return text in self.html


class _Outputs:
    """What a list of SSE events shows the page (shared by results, steps and live views)."""

    @property
    def events(self) -> list[SSEEvent]:
        """Every SSE event, in order."""
        raise NotImplementedError

    @property
    def signals(self) -> dict[str, Any]:
        """Every patched signal merged in order (as the page ends up holding them), without
        the local ``_errors`` signals (see ``field_errors``). A deleted record's signals are
        ``None`` (``{"todo": {"3": None}}``)."""
        merged: dict[str, Any] = {}
        for patch in self._signal_patches():
            _merge(merged, patch)
        state: dict[str, Any] = {}
        for namespace, values in merged.items():
            if isinstance(values, dict) and "_errors" in values:
                values = {k: v for k, v in values.items() if k != "_errors"}
                if not values:
                    continue
            state[namespace] = values
        return state

    @property
    def field_errors(self) -> dict[str, str]:
        """The field errors of a refused call (``{"amount": "Input should be ..."}``); the
        empty values a successful call sends to clear them are left out."""
        errors: dict[str, str] = {}
        for patch in self._signal_patches():
            for values in patch.values():
                found = values.get("_errors") if isinstance(values, dict) else None
                if isinstance(found, dict):
                    errors.update({str(k): str(v) for k, v in found.items()})
        return {name: message for name, message in errors.items() if message}

    @property
    def fragments(self) -> list[Fragment]:
        """The HTML patches, toasts and scripts aside (those are ``actions``)."""
        return [item for item in self._elements() if isinstance(item, Fragment)]

    @property
    def html(self) -> str:
        """The HTML of every fragment, joined (for ``"Saved" in result.html``)."""
        return "\n".join(fragment.html for fragment in self.fragments)

    @property
    def actions(self) -> list[Action]:
        """Toasts, redirects, alerts and scripts in the order they reach the page, as the
        values an event returns (``toast(...)``, ``redirect(...)``...), so they compare equal.
        A script that is exactly ``alert("...")`` counts as an ``Alert``."""
        return [item for item in self._elements() if isinstance(item, Action)]

    @property
    def toasts(self) -> list[Toast]:
        """``Toast(message, variant, duration_ms)``; an error answer's toast has variant
        ``error`` and the field errors in its message."""
        return [item for item in self.actions if isinstance(item, Toast)]

    @property
    def redirect(self) -> str | None:
        """Where the page is sent (the last redirect), or ``None``."""
        urls = [item.url for item in self.actions if isinstance(item, Redirect)]
        return urls[-1] if urls else None

    @property
    def alerts(self) -> list[str]:
        return [item.message for item in self.actions if isinstance(item, Alert)]

    @property
    def scripts(self) -> list[str]:
        return [item.code for item in self.actions if isinstance(item, Script)]

    def _signal_patches(self) -> list[dict[str, Any]]:
        patches = []
        for event in self.events:
            if event.type == "datastar-patch-signals":
                loaded = json.loads(event.value("signals") or "{}")
                if isinstance(loaded, dict):
                    patches.append(loaded)
        return patches

    def _elements(self) -> list[Fragment | Action]:
        found: list[Fragment | Action] = []
        for event in self.events:
            if event.type == "datastar-patch-elements":
                found.extend(_element_outputs(event))
        return found

    def _summary(self) -> str:
        parts = []
        if self.signals:
            parts.append(f"signals={self.signals!r}")
        if self.field_errors:
            parts.append(f"field_errors={self.field_errors!r}")
        if self.actions:
            parts.append(f"actions={self.actions!r}")
        if self.fragments:
            parts.append(f"fragments={[str(f) for f in self.fragments]!r}")
        return " ".join(parts)


class Step(_Outputs):
    """One part of an answer: a ``yield`` of a streaming event, or one live-stream message."""

    def __init__(self, events: list[SSEEvent]) -> None:
        self._events = events

    @property
    def events(self) -> list[SSEEvent]:
        return list(self._events)

    def __repr__(self) -> str:
        return f"<Step {self._summary()}>"


class CallResult(_Outputs):
    """The answer to one event call, as the browser received it.

    Attributes:
        status: the HTTP status (200, 204 when nothing is sent back, 422 for refused input,
            403, 404, 409, 500...).
        headers: the response headers.
        text: the raw SSE body.
        steps: one ``Step`` per ``yield`` of a streaming event (one for other events).
        error: the message of an error answer (``X-StarModel-Error``), else ``None``; a
            streaming event that fails after its first step answers 200 and shows an error
            toast instead.
    """

    def __init__(self, name: str, response: httpx.Response, parts: list[bytes]) -> None:
        self.name = name
        self.response = response
        self.status = response.status_code
        self.headers = response.headers
        self.text = b"".join(parts).decode("utf-8", "replace")
        self.steps = [Step(parse_sse(part.decode("utf-8", "replace"))) for part in parts]
        self.error: str | None = response.headers.get(ERROR_HEADER)

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300

    @property
    def events(self) -> list[SSEEvent]:
        return [event for step in self.steps for event in step.events]

    def __repr__(self) -> str:
        steps = f" steps={len(self.steps)}" if len(self.steps) > 1 else ""
        error = f" error={self.error!r}" if self.error else ""
        return f"<CallResult {self.name} {self.status}{error}{steps} {self._summary()}".rstrip() + ">"


class LiveView(_Outputs):
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
        pending = self._stream.pending
        while pending:
            self._messages.append(Step(parse_sse(pending.popleft())))
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


def _merge(into: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for name, value in patch.items():
        current = into.get(name)
        if isinstance(value, Mapping) and isinstance(current, dict):
            _merge(current, value)
        else:
            into[name] = _copy(value)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return value


_SCRIPT = re.compile(r"^<script[^>]*>(.*)</script>\s*$", re.S)
_REDIRECT = re.compile(r'^window\.location\.assign\(("(?:[^"\\]|\\.)*")\)$', re.S)
_ALERT = re.compile(r'^alert\(("(?:[^"\\]|\\.)*")\)$', re.S)


def _element_outputs(event: SSEEvent) -> list[Fragment | Action]:
    html = event.value("elements") or ""
    selector = event.value("selector")
    mode = event.value("mode") or "outer"
    if selector == TOASTS_SELECTOR and mode == "append":
        return list(_ToastReader.read(html))
    script = _SCRIPT.match(html.strip()) if selector == "body" and mode == "append" else None
    if script is None:
        return [Fragment(html, selector, mode)]
    code = script.group(1)
    redirect = _REDIRECT.match(code)
    if redirect:
        return [Redirect(json.loads(redirect.group(1)))]
    alert = _ALERT.match(code)
    if alert:
        return [Alert(json.loads(alert.group(1)))]
    return [Script(code)]


class _ToastReader(HTMLParser):
    """Toasts back from the HTML StarModel renders them as (``data-variant``, the removal
    delay in ``data-init``, the message text)."""

    _DELAY = re.compile(r"el\.remove\(\),\s*(\d+)\)")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.toasts: list[tuple[str, str, int]] = []
        self._depth = 0
        self._current: list[Any] | None = None

    @classmethod
    def read(cls, html: str) -> list[Toast]:
        reader = cls()
        reader.feed(html)
        reader.close()
        return [Toast(text, cast(ToastVariant, variant), delay) for text, variant, delay in reader.toasts]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._current is not None:
            self._depth += 1
            return
        values = {name: value or "" for name, value in attrs}
        if "starmodel-toast" in values.get("class", "").split():
            delay = self._DELAY.search(unescape(values.get("data-init", "")))
            self._current = [[], values.get("data-variant", "info"), int(delay.group(1)) if delay else 4000]
            self._depth = 0

    def handle_endtag(self, tag: str) -> None:
        if self._current is None:
            return
        if self._depth:
            self._depth -= 1
            return
        text, variant, delay = self._current
        self.toasts.append(("".join(text).strip(), variant, delay))
        self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current[0].append(data)


# --- an ASGI transport that keeps the answer's parts -------------------------------------


class _Body(httpx.AsyncByteStream):
    """A response body read as the app sends it; closing it early is a client going away."""

    def __init__(self, chunks: asyncio.Queue[bytes | None], task: asyncio.Task[None],
                 disconnected: asyncio.Event) -> None:
        self._chunks = chunks
        self._task = task
        self._disconnected = disconnected

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._chunks.get()
            if chunk is None:
                break
            yield chunk
        await self._task  # the app's own exception, if it raised one, reaches the test

    async def aclose(self) -> None:
        self._disconnected.set()
        if not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except TimeoutError:
                self._task.cancel()
            except Exception:
                pass


class _ASGITransport(httpx.AsyncBaseTransport):
    """Like ``httpx.ASGITransport``, but the body streams as the app sends it and every
    ``http.response.body`` message is kept as one part (``response.extensions["parts"]``):
    the steps of a streaming event."""

    def __init__(self, app: Any, lifespan_state: dict[str, Any]) -> None:
        self.app = app
        self.state = lifespan_state

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join([part async for part in cast(httpx.AsyncByteStream, request.stream)])
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": request.url.scheme,
            "path": unquote(request.url.path),
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "server": (request.url.host, request.url.port or 80),
            "client": ("127.0.0.1", 50000),
            "state": dict(self.state),
        }
        sent_request = False
        disconnected = asyncio.Event()
        started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = (
            asyncio.get_running_loop().create_future()
        )
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        parts: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                if not started.done():
                    started.set_result((message["status"], list(message.get("headers", []))))
            elif message["type"] == "http.response.body":
                chunk = bytes(message.get("body", b""))
                more = bool(message.get("more_body", False))
                if more or chunk:
                    parts.append(chunk)
                    chunks.put_nowait(chunk)
                if not more:
                    chunks.put_nowait(None)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            finally:
                chunks.put_nowait(None)
                if not started.done():
                    started.set_exception(RuntimeError("the app sent no response"))

        task = asyncio.create_task(run())
        try:
            status, headers = await started
        except RuntimeError:
            await task  # the app's exception, if it raised one
            raise
        return httpx.Response(
            status,
            headers=headers,
            stream=_Body(chunks, task, disconnected),
            extensions={"parts": parts},
        )


# --- the app's lifespan ------------------------------------------------------------------


class _Lifespan:
    """Drives the ASGI lifespan protocol: startup on ``start``, shutdown on ``stop``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}

        async def send(message: dict[str, Any]) -> None:
            self._from_app.put_nowait(message)

        self._task = asyncio.create_task(self.app(scope, self._to_app.get, send))
        self._to_app.put_nowait({"type": "lifespan.startup"})
        answer = await self._answer(timeout)
        if answer["type"] != "lifespan.startup.complete":
            await self._finish()
            raise RuntimeError(f"the app failed to start: {answer.get('message', '')}")

    async def stop(self, timeout: float) -> None:
        if self._task is None or self._task.done():
            return
        self._to_app.put_nowait({"type": "lifespan.shutdown"})
        answer = await self._answer(timeout)
        await self._finish()
        if answer["type"] != "lifespan.shutdown.complete":
            raise RuntimeError(f"the app failed to stop cleanly: {answer.get('message', '')}")

    async def _answer(self, timeout: float) -> dict[str, Any]:
        assert self._task is not None
        waiting = asyncio.ensure_future(self._from_app.get())
        done, _ = await asyncio.wait({waiting, self._task}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if waiting in done:
            return waiting.result()
        waiting.cancel()
        if self._task in done:
            self._task.result()  # its exception, if any
            raise RuntimeError("the app ended its lifespan without answering")
        raise TimeoutError(f"the app did not answer its lifespan message within {timeout}s")

    async def _finish(self) -> None:
        if self._task is not None:
            await self._task


# --- sessions and the client -------------------------------------------------------------


class _AppConnection:
    """What every session of one ``EventClient`` shares: the app, its transport, its state."""

    def __init__(self, sm: WebApp, base_url: str, timeout: float, lifespan: bool) -> None:
        self.sm = sm
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.lifespan = _Lifespan(sm.app) if lifespan else None
        self.transport = _ASGITransport(sm.app, self.lifespan.state if self.lifespan else {})
        self.sessions: list[BrowserSession] = []
        self.running = False

    def check_running(self) -> None:
        if not self.running:
            raise RuntimeError("the client is not open: use `async with EventClient(sm) as client:`")

    def resolve(self, event: Any, key: Any) -> tuple[str, str, str | None]:
        """``(method, path, key)`` of a call, refusing events this app does not serve."""
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
    def sm(self) -> WebApp:
        """The app under test."""
        return self._conn.sm

    def session(self) -> BrowserSession:
        """A new browser session: its own cookie, session id and tab."""
        return BrowserSession(self._conn)

    async def call(
        self,
        event: BoundEvent,
        /,
        *,
        _signals: Mapping[str, Any] | None = None,
        _key: Any = None,
        _headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> CallResult:
        """Call an event as this session's tab does, and read the whole answer.

        ``event`` is read from a class (``Counter.increment``, ``Todo.create``) or from a
        record (``todo.toggle``, whose key goes with the call). ``params`` are the action's
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
                f"{event.owner.__name__}.{event.spec.name}: no complete answer within {self._conn.timeout}s"
            ) from None
        self._follow_session_cookie(response)
        parts = cast(list[bytes], response.extensions.get("parts", [response.content]))
        return CallResult(f"{event.owner.__name__}.{event.spec.name}", response, parts)

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
    async def watch(self, *records: type[Entity], own_tab: bool = False) -> AsyncIterator[LiveView]:
        """A tab of this session with its live stream open for the block: the ``LiveView``
        collects what the stream carries (changes of global entities, of this session's
        entities made by its other tabs, background events' progress; with ``records``, the
        changes to those record classes a live list shows). The tab is a new one, so it
        sees what this session's calls change; with ``own_tab=True`` it is the tab that
        makes this session's calls, which is not sent its own changes again."""
        self._conn.check_running()
        sm = self._conn.sm
        unknown = [cls.__name__ for cls in records if cls not in sm.entities() or cls.options().scope != "id"]
        if unknown:
            raise LookupError(f"watch(): {', '.join(unknown)} is not a record class this app serves")
        topics = sm.records.watched_topics({WATCH_SIGNAL: {cls.namespace(): True for cls in records}},
                                           self.session_id)
        tab = self.tab_id if own_tab else _new_tab_id()
        stream = sm.hub.open(self.session_id, tab, join=False, watch=topics)
        stream.limit = max(stream.limit, _WATCH_LIMIT)
        body = cast(AsyncGenerator[str, None], sm.hub.events(stream, None))
        try:
            first = await anext(body)
        except StopAsyncIteration:
            raise RuntimeError("the app's live streams are closed (it is stopping)") from None
        try:
            yield LiveView(stream, first)
        finally:
            await body.aclose()

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until no event runs on in the background (``background=True`` events,
        streaming events still going); ``TimeoutError`` if some still run after ``timeout`` s."""
        running: set[asyncio.Task[Any]] = getattr(self._conn.sm.dispatcher, "_running", set())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            pending = [task for task in running if not task.done()]
            if not pending:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(pending)} event(s) still running after {timeout}s")
            await asyncio.wait(pending, timeout=remaining)
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
    """

    def __init__(
        self, sm: WebApp, *, base_url: str = BASE_URL, timeout: float = 10.0, lifespan: bool = True
    ) -> None:
        if not isinstance(sm, WebApp):
            raise TypeError(f"EventClient needs a StarModel app, not {type(sm).__name__}")
        super().__init__(_AppConnection(sm, base_url, timeout, lifespan))

    async def __aenter__(self) -> EventClient:
        if self._conn.running:
            raise RuntimeError("this EventClient is open already")
        if self._conn.lifespan is not None:
            await self._conn.lifespan.start(self._conn.timeout)
        self._conn.running = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._conn.running = False
        try:
            running: Iterable[asyncio.Task[Any]] = getattr(self._conn.sm.dispatcher, "_running", set())
            leftover = [task for task in list(running) if not task.done()]
            for task in leftover:  # background work a test left running: stopped, not awaited for
                task.cancel()
            if leftover:
                await asyncio.wait(leftover, timeout=self._conn.timeout)
            for session in self._conn.sessions:
                await session.http.aclose()
        finally:
            if self._conn.lifespan is not None:
                await self._conn.lifespan.stop(self._conn.timeout)


def _new_tab_id() -> str:
    return "test-" + secrets.token_hex(6)


def _set_session_cookie(http: httpx.AsyncClient, sm: WebApp, session_id: str) -> str | None:
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
