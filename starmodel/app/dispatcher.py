"""The dispatcher: a browser request for an event -> identity, parameters, unit of work, outputs."""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from starmodel.app.locks import KeyedLocks
from starmodel.app.uow import UnitOfWork
from starmodel.core.actions import PatchSignals, toast
from starmodel.core.context import CallContext, request_signals
from starmodel.core.entity import Entity
from starmodel.core.errors import (
    ConcurrencyError,
    EntityNotFound,
    EventNotFound,
    PermissionDenied,
    StarModelError,
    ValidationFailed,
)
from starmodel.core.events import EventSpec
from starmodel.core.messages import CancelRequested, EventOutputs
from starmodel.core.records import current_workspace
from starmodel.core.store import StateStore

__all__ = ["Dispatcher", "EventResult", "JsonReader", "Prepare", "Prepared", "UowFactory"]

log = logging.getLogger("starmodel.dispatcher")
UowFactory = Callable[[type[Entity]], UnitOfWork]
Prepare = Callable[[list[Any]], Any]
JsonReader = Callable[[str], Any]
GLOBAL_KEY = "global"


@dataclass(frozen=True)
class Prepared:
    """What an adapter made of an event's returned outputs before the commit (e.g. its SSE
    text): a return value the adapter cannot render refuses the event, so nothing is saved."""

    value: Any


@dataclass
class EventResult:
    """What an event produced: a list of outputs, or a stream of lists (one per ``yield``).

    Outputs are ``PatchSignals`` (changed state), components (anything with ``__html__`` or
    ``__ft__``) and actions (``redirect``, ``toast``...), in the order they should reach the page.
    """

    spec: EventSpec
    outputs: list[Any] = field(default_factory=list)
    stream: AsyncIterator[list[Any]] | None = None


_DONE = object()


class Dispatcher:
    """Runs ``@event`` methods for requests; knows nothing of HTTP.

    Args:
        uow_factory: a fresh unit of work for an entity class (one per event).
        read_json: parses the JSON of an action's argument, within the web adapter's limits
            (raises ``ValueError`` for what it refuses: the argument is then taken as text).
        retries: how often an event that lost a write race is re-run.
    """

    def __init__(self, uow_factory: UowFactory, *, read_json: JsonReader, retries: int = 8) -> None:
        self.uow_factory = uow_factory
        self.read_json = read_json
        self.retries = retries
        self.locks = KeyedLocks()
        self._running: set[asyncio.Task[None]] = set()
        # background events by (namespace, key, event), for cancelling; and those being cancelled
        self._background: dict[tuple[str, str, str], set[asyncio.Task[None]]] = {}
        self._cancelling: set[asyncio.Task[None]] = set()

    # --- identity and parameters -------------------------------------------------------

    def identity(
        self,
        entity_cls: type[Entity],
        ctx: CallContext,
        args: Mapping[str, str],
        spec: EventSpec | None = None,
    ) -> str:
        """The key of the entity instance a request addresses (``""`` for class events)."""
        if spec is not None and spec.on_class:
            return ""
        scope = entity_cls.options().scope
        if scope == "session":
            return ctx.session_id
        if scope == "global":
            return GLOBAL_KEY
        raw = args.get("_key")
        if not raw:
            raise EntityNotFound(f"{entity_cls.__name__}: which record? the request has no key")
        key = self.argument(raw)  # actions send it bare; a JSON-quoted key is accepted too
        return str(key) if isinstance(key, str | int) and not isinstance(key, bool) else raw

    def bind(
        self,
        entity_cls: type[Entity],
        spec: EventSpec,
        args: Mapping[str, str],
        signals: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Parameter values from the action's arguments, else the entity's signals; validated."""
        if not args and not spec.params:
            return {}
        unknown = [name for name in args if name != "_key" and name not in spec.params]
        if unknown:
            raise ValidationFailed(
                {name: "Unexpected parameter" for name in unknown},
                f"Invalid input for {spec.name}",
            )
        own = signals.get(entity_cls.namespace()) if signals else None
        if not isinstance(own, Mapping):
            own = {}
        values: dict[str, Any] = {}
        verbatim: dict[str, str] = {}
        for name in spec.params:
            if name in args:
                raw = args[name]
                values[name] = self.argument(raw)
                if values[name] != raw and not isinstance(values[name], str):
                    verbatim[name] = raw  # `?note=42` may mean the text "42"; `?note="x"` is "x"
            elif name in own:
                values[name] = own[name]
        if not values and spec.all_defaults is not None:
            return dict(spec.all_defaults)
        try:
            return spec.validate_params(values)
        except ValidationFailed as exc:
            # `?note=42` for `note: str | None`: the JSON reading (42) was wrong, the text is meant
            retry = {name: verbatim[name] for name in exc.errors if name in verbatim}
            if not retry:
                raise
            return spec.validate_params({**values, **retry})

    def argument(self, raw: str) -> Any:
        """Action arguments are JSON in the query string; a bare word (or JSON the reader
        refuses) is taken as text."""
        try:
            return self.read_json(raw)
        except ValueError:
            return raw

    # --- running events ----------------------------------------------------------------

    async def dispatch(
        self,
        entity_cls: type[Entity],
        spec: EventSpec,
        ctx: CallContext,
        args: Mapping[str, str],
        signals: Mapping[str, Any] | None = None,
        prepare: Prepare | None = None,
    ) -> EventResult:
        """Validate and run one event; raise ``StarModelError`` subclasses for the caller.

        ``prepare`` (optional) turns what the event returned (or each ``yield``) into a
        ``Prepared`` value before the commit; if it raises, the event is rolled back.
        """
        key = self.identity(entity_cls, ctx, args, spec)
        params = self.bind(entity_cls, spec, args, signals)
        request_signals.set(signals)  # browser-stored entities come from here
        if spec.background:
            await self._start_background(entity_cls, spec, ctx, key, params, prepare)
            return EventResult(spec)
        if spec.kind == "asyncgen":
            stream = await self._start_stream(entity_cls, spec, ctx, key, params, prepare)
            return EventResult(spec, stream=stream)
        for attempt in range(self.retries):
            try:
                async with self.turn(entity_cls, key), self.uow_factory(entity_cls) as uow:
                    target = await _target(uow, entity_cls, spec, key, ctx)
                    _authorize(spec, ctx, target)
                    returned = _prepare(flatten(await _call(spec, target, params, uow)), prepare)
                    patch = await uow.commit(ctx)
                break
            except ConcurrencyError:  # only while nothing of the event is saved: a re-run is safe
                if attempt == self.retries - 1:
                    raise
                await _back_off(attempt)
        outputs: list[Any] = [PatchSignals(patch)] if patch else []
        outputs.extend(returned)
        return EventResult(spec, outputs=outputs)

    def turn(self, entity_cls: type[Entity], key: str) -> AbstractAsyncContextManager[Any]:
        """Events on one entity instance take turns. SQL records take them in the database
        (the record is read ``FOR UPDATE``), so no connection waits idle here; the other
        stores take them in this process (and check versions across processes)."""
        if entity_cls.options().store is StateStore.SERVER_SQL:
            return nullcontext()
        return self.locks.hold((entity_cls.namespace(), key))

    async def _start_background(
        self,
        entity_cls: type[Entity],
        spec: EventSpec,
        ctx: CallContext,
        key: str,
        params: dict[str, Any],
        prepare: Prepare | None,
    ) -> None:
        """Check the caller may run it, then run the event in a task of its own; the answer
        goes back at once and every step reaches the entity's viewers through the bus."""
        async with self.uow_factory(entity_cls) as uow:
            _authorize(spec, ctx, await _target(uow, entity_cls, spec, key, ctx))
        # the calling tab gets the changes through its live stream like every other tab
        viewer_ctx = replace(ctx, tab_id=None, entity=None)
        task = asyncio.create_task(
            self._run_background(entity_cls, spec, viewer_ctx, key, params, prepare)
        )
        self._running.add(task)
        slot = (entity_cls.namespace(), key, spec.name)
        self._background.setdefault(slot, set()).add(task)

        def forget(done: asyncio.Task[None]) -> None:
            self._running.discard(done)
            self._cancelling.discard(done)
            tasks = self._background.get(slot)
            if tasks is not None:
                tasks.discard(done)
                if not tasks:
                    del self._background[slot]

        task.add_done_callback(forget)

    async def cancel(
        self, entity_cls: type[Entity], spec: EventSpec, ctx: CallContext, args: Mapping[str, str]
    ) -> None:
        """Ask for the background event ``spec`` on the caller's entity to stop, wherever it
        runs (the request goes over the bus; ``on_cancel_requested`` acts on it)."""
        if not spec.background:
            raise EventNotFound(f"{spec.name} is not a background event")
        key = self.identity(entity_cls, ctx, args, spec)
        async with self.uow_factory(entity_cls) as uow:
            _authorize(spec, ctx, await _target(uow, entity_cls, spec, key, ctx))
            bus = uow.bus
        await bus.publish(CancelRequested(entity_cls.namespace(), key, spec.name))

    def running(self, entity_cls: type[Entity], key: str, event_name: str) -> int:
        """How many runs of a background event on one entity this process has going."""
        return len(self._background.get((entity_cls.namespace(), key, event_name), ()))

    def running_tasks(self) -> list[asyncio.Task[None]]:
        """The background and streaming runs this process has going."""
        return [task for task in self._running if not task.done()]

    async def wait_until_idle(self, timeout: float) -> None:
        """Wait until no background or streaming run is going (runs started meanwhile too);
        ``TimeoutError`` if some still run after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending := self.running_tasks():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(pending)} event(s) still running after {timeout}s")
            await asyncio.wait(pending, timeout=remaining)

    def background_tasks(self) -> list[asyncio.Task[None]]:
        """The background runs this process has going."""
        return [task for tasks in self._background.values() for task in tasks if not task.done()]

    def cancel_background(self) -> int:
        """Cancel every background run of this process, as its cancel button would (the server
        stops): each gets ``CancelledError`` at its current ``await``, its uncommitted step is
        rolled back, and its viewers are told. Returns how many were cancelled."""
        tasks = self.background_tasks()
        for task in tasks:
            self._cancelling.add(task)
            task.cancel()
        return len(tasks)

    async def on_cancel_requested(self, request: CancelRequested) -> None:
        """Bus subscriber (in every process): cancel the matching runs held here."""
        for task in list(self._background.get((request.namespace, request.key, request.event), ())):
            self._cancelling.add(task)
            task.cancel()

    async def _run_background(
        self,
        entity_cls: type[Entity],
        spec: EventSpec,
        ctx: CallContext,
        key: str,
        params: dict[str, Any],
        prepare: Prepare | None,
    ) -> None:
        options = entity_cls.options()
        bus = self.uow_factory(entity_cls).bus
        session = ctx.session_id if options.scope == "session" else None

        async def show(patch: dict[str, Any], outputs: list[Any]) -> None:
            # state changes travel as EntityChanged; what the event showed goes to its viewers
            if outputs:
                await bus.publish(EventOutputs(options.namespace, key, options.scope, outputs, session))

        try:
            await self._run_steps(entity_cls, spec, ctx, key, params, prepare, show)
        except asyncio.CancelledError:
            if asyncio.current_task() not in self._cancelling:
                raise  # the app is stopping
            await show({}, _prepare([toast(f"{spec.name} was cancelled", "warning")], prepare))
            return
        except Exception as exc:
            log.exception("background event %s.%s failed", entity_cls.__name__, spec.name)
            message = str(exc) if isinstance(exc, StarModelError | ValueError) else "it failed"
            await show({}, _prepare([toast(f"{spec.name}: {message}", "error")], prepare))

    async def _run_steps(
        self,
        entity_cls: type[Entity],
        spec: EventSpec,
        ctx: CallContext,
        key: str,
        params: dict[str, Any],
        prepare: Prepare | None,
        emit: Callable[[dict[str, Any], list[Any]], Awaitable[None]],
    ) -> None:
        """Run an event step by step (one step for a plain method, one per ``yield``),
        committing each and handing ``emit`` the signals patch and the step's outputs."""
        async with self.turn(entity_cls, key), self.uow_factory(entity_cls) as uow:
            target = await _target(uow, entity_cls, spec, key, ctx)
            _authorize(spec, ctx, target)
            if spec.kind != "asyncgen":
                returned = _prepare(flatten(await _call(spec, target, params, uow)), prepare)
                await emit(await uow.commit(ctx), returned)
                return
            current_workspace.set(uow)  # this task's context only
            generator = spec.fn(target, **params)
            try:
                async for item in _guard(generator):
                    returned = _prepare(flatten(item), prepare)
                    await emit(await uow.commit(ctx), returned)
                patch = await uow.commit(ctx)
                if patch:
                    await emit(patch, [])
            finally:
                await generator.aclose()

    async def _start_stream(
        self,
        entity_cls: type[Entity],
        spec: EventSpec,
        ctx: CallContext,
        key: str,
        params: dict[str, Any],
        prepare: Prepare | None,
    ) -> AsyncIterator[list[Any]]:
        """Run a streaming event in its own task, up to its first step.

        The task owns the entity's lock and unit of work (so they are released whatever the
        caller does); an error before the first step is raised here, like any other event's.
        """
        steps = _Steps()
        task = asyncio.create_task(self._run_stream(entity_cls, spec, ctx, key, params, prepare, steps))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        first = await steps.queue.get()
        if isinstance(first, BaseException):
            raise first
        return _drain(first, steps, task)

    async def _run_stream(
        self,
        entity_cls: type[Entity],
        spec: EventSpec,
        ctx: CallContext,
        key: str,
        params: dict[str, Any],
        prepare: Prepare | None,
        steps: _Steps,
    ) -> None:
        async def hand_over(patch: dict[str, Any], returned: list[Any]) -> None:
            await steps.hand_over([*([PatchSignals(patch)] if patch else []), *returned])

        try:
            await self._run_steps(entity_cls, spec, ctx, key, params, prepare, hand_over)
        except Exception as exc:
            steps.queue.put_nowait(exc)
            return
        steps.queue.put_nowait(_DONE)

    async def current_state(
        self, entity_classes: Iterable[type[Entity]], session_id: str
    ) -> dict[str, Any]:
        """The signals of every session/global entity a tab of ``session_id`` may show, as the
        store has them now (defaults for those not stored: after a restart, or expired)."""
        state: dict[str, Any] = {}
        for entity_cls in entity_classes:
            scope = entity_cls.options().scope
            if scope == "id" or entity_cls.options().store.is_client:
                continue  # records come with their lists; browser-stored state is the browser's
            key = session_id if scope == "session" else GLOBAL_KEY
            try:
                async with self.uow_factory(entity_cls) as uow:
                    entity = await uow.load(entity_cls, key)  # defaults if nothing is stored
            except StarModelError as exc:  # its store is down: the tab keeps what it shows
                # (info: every tab opening during an outage comes here; the store's adapter
                # reports the outage itself once)
                log.info("%s not resynced: %s", entity_cls.__name__, exc)
                continue
            state.update(entity.signals())
        return state


class _Steps:
    """Hands a streaming event's steps to its reader one at a time: the event goes on to its
    next step only when the reader asks for it, as if the reader ran the generator itself."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.wanted = asyncio.Event()

    async def hand_over(self, outputs: list[Any]) -> None:
        self.queue.put_nowait(outputs)
        await self.wanted.wait()
        self.wanted.clear()

    async def next(self) -> Any:
        self.wanted.set()
        return await self.queue.get()


async def _drain(first: Any, steps: _Steps, task: asyncio.Task[None]) -> AsyncIterator[list[Any]]:
    """The steps of a running streaming event; a caller that stops reading stops the event
    (its current, uncommitted step is rolled back)."""
    item = first
    try:
        while item is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
            item = await steps.next()
    finally:
        if not task.done():
            task.cancel()


def _prepare(outputs: list[Any], prepare: Prepare | None) -> list[Any]:
    if prepare is None or not outputs:
        return outputs
    return [Prepared(prepare(outputs))]


async def _guard(generator: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Turn pydantic errors raised inside an event into ``ValidationFailed``."""
    try:
        async for item in generator:
            yield item
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, "Invalid value") from None


async def _target(
    uow: UnitOfWork, entity_cls: type[Entity], spec: EventSpec, key: str, ctx: CallContext
) -> Entity | type[Entity]:
    """What the event method receives first: the entity instance, or the class itself."""
    uow.owner = ctx.session_id
    return entity_cls if spec.on_class else await uow.load(entity_cls, key)


async def _call(
    spec: EventSpec, target: Entity | type[Entity], params: dict[str, Any], uow: UnitOfWork
) -> Any:
    token = current_workspace.set(uow)
    try:
        result = spec.fn(target, **params)
        if inspect.isawaitable(result):
            result = await result
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, "Invalid value") from None
    finally:
        current_workspace.reset(token)
    return result


async def _back_off(attempt: int) -> None:
    """A short random pause before re-running a conflicting event, growing with each
    attempt, so that writers in different processes stop colliding in lock step."""
    if attempt:
        await asyncio.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.05)))


def _authorize(spec: EventSpec, ctx: CallContext, target: Entity | type[Entity]) -> None:
    """The event's own ``allow`` decides; without one, the entity's policy for events."""
    ctx.entity = target if isinstance(target, Entity) else None
    if spec.allow is not None:
        allowed = spec.allow(ctx)
    else:
        entity_cls = target if isinstance(target, type) else type(target)
        allowed = entity_cls.permits("events", ctx)
    if not allowed:
        raise PermissionDenied(f"You may not run {spec.name}")


def flatten(returned: Any) -> list[Any]:
    """An event's return value as a list of outputs (``None`` -> nothing)."""
    if returned is None:
        return []
    if isinstance(returned, list | tuple):
        items: list[Any] = []
        for item in returned:
            items.extend(flatten(item))
        return items
    return [returned]

