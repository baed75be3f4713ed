"""The dispatcher: a browser request for an event -> identity, parameters, unit of work, outputs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from starmodel.app.background import BackgroundRuns, RunClaims
from starmodel.app.event_call import (
    EventCall,
    EventResult,
    OutputCheck,
    Units,
    authorize,
    back_off,
    call_method,
    checked,
    flatten,
    target_of,
)
from starmodel.app.locks import KeyedLocks
from starmodel.app.observe import EventObserver, observed
from starmodel.app.relay import Relay
from starmodel.app.resync import GLOBAL_KEY, current_state
from starmodel.app.streams import start_stream
from starmodel.app.uow import UnitOfWork
from starmodel.core.actions import PatchSignals
from starmodel.core.clock import Clock
from starmodel.core.context import CallContext, request_signals
from starmodel.core.entity import Entity
from starmodel.core.errors import ConcurrencyError, EntityNotFound, EventNotFound, ValidationFailed
from starmodel.core.events import EventSpec
from starmodel.core.messages import CancelRequested
from starmodel.core.ports import EventBus
from starmodel.core.presence import PresenceReader, current_presence

__all__ = ["Dispatcher", "EventResult", "JsonReader", "OutputCheck", "UowFactory", "flatten"]

UowFactory = Callable[[type[Entity]], UnitOfWork]
JsonReader = Callable[[str], Any]


class Dispatcher:
    """Runs ``@event`` methods for requests; knows nothing of HTTP.

    Args:
        uow_factory: a fresh unit of work for an entity class (one per event).
        read_json: parses the JSON of an action's argument, within the web adapter's limits
            (raises ``ValueError`` for what it refuses: the argument is then taken as text).
        retries: how often an event that lost a write race is re-run.
        bus: where background runs publish (default: the bus of a unit of work).
        claims: exclusive background runs' claims (default: this process's own).
        renew_every: seconds between renewals of an exclusive run's claim (0: never).
        presence: who looks at which instance (``presence_of`` in event bodies).
    """

    def __init__(
        self,
        uow_factory: UowFactory,
        *,
        read_json: JsonReader,
        retries: int = 8,
        bus: EventBus | None = None,
        claims: RunClaims | None = None,
        renew_every: float = 0.0,
        presence: PresenceReader | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.read_json = read_json
        self.retries = retries
        self.locks = KeyedLocks()
        self.units = Units(uow_factory, self.turn)
        self._bus = bus
        self.background = BackgroundRuns(self.units, self._the_bus, claims, renew_every)
        self._streams: set[asyncio.Task[None]] = set()
        self.observers: list[EventObserver] = []  # logs, metrics, traces (see app.observe)
        self.presence = presence

    @property
    def clock(self) -> Clock:
        """The clock event bodies sleep on (``starmodel.sleep``); a test may set a fake one."""
        return self.units.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.units.clock = clock

    def _the_bus(self) -> EventBus:
        if self._bus is None:
            self._bus = self.uow_factory(Entity).bus
        return self._bus

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

    @observed
    async def dispatch(
        self,
        entity_cls: type[Entity],
        spec: EventSpec,
        ctx: CallContext,
        args: Mapping[str, str],
        signals: Mapping[str, Any] | None = None,
        check: OutputCheck | None = None,
    ) -> EventResult:
        """Validate and run one event; raise ``StarModelError`` subclasses for the caller.

        ``check`` (optional) refuses, before the commit, outputs the caller could not send
        (the event is then rolled back). The outputs come back as data, to be rendered once.
        """
        key = self.identity(entity_cls, ctx, args, spec)
        params = self.bind(entity_cls, spec, args, signals)
        request_signals.set(signals)  # browser-stored entities come from here
        if self.presence is not None:
            current_presence.set(self.presence)
        call = EventCall(entity_cls, spec, key, params, ctx, signals)
        if spec.background:
            await self.background.start(call, check)
            return EventResult(spec)
        if spec.kind == "asyncgen":
            return EventResult(spec, stream=await start_stream(call, self.units, check, self._streams))
        return EventResult(spec, outputs=await self._run_plain(call, check))

    async def _run_plain(self, call: EventCall, check: OutputCheck | None) -> list[Any]:
        """A plain event holds its entity from start to commit; a lost write race re-runs it.

        Its first attempt is optimistic (stores may read without locks, its version checks
        decide) and may start from the entity as the event before it on the same entity
        stored it, or will (``Relay``); a re-run reads and locks the general way.
        """
        for attempt in range(self.retries):
            try:
                async with self.turn(call.entity_cls, call.key) as turn:
                    relay = Relay(turn, first=attempt == 0)
                    uow = self.uow_factory(call.entity_cls)
                    relay.join(uow)
                    try:
                        async with uow:
                            target = await target_of(uow, call, relay.taken)
                            authorize(call.spec, call.ctx, target)
                            returned = await call_method(call, target, uow, self.units.clock)
                            returned = checked(flatten(returned), check)
                            patch = await uow.commit(call.ctx)
                        await relay.check_start(uow)
                    except Exception as exc:
                        relay.failed()
                        if not isinstance(exc, ConcurrencyError):
                            await relay.check_start(uow)  # no refusal speaks of a state never stored
                        raise
                    except BaseException:
                        relay.failed()
                        raise
                    relay.done(uow, target)
                break
            except ConcurrencyError:  # only while nothing of the event is saved: a re-run is safe
                if attempt == self.retries - 1:
                    raise
                await back_off(attempt)
        outputs: list[Any] = [PatchSignals(patch)] if patch else []
        outputs.extend(returned)
        return outputs

    def turn(self, entity_cls: type[Entity], key: str) -> AbstractAsyncContextManager[Any]:
        """Events on one entity instance take turns in this process (a store's connection is
        taken once the turn is, so none waits idle here); across processes, stores check
        versions, and SQL records read the general way are locked (``FOR UPDATE``)."""
        return self.locks.hold((entity_cls.namespace(), key))

    # --- background runs ---------------------------------------------------------------

    async def cancel(
        self, entity_cls: type[Entity], spec: EventSpec, ctx: CallContext, args: Mapping[str, str]
    ) -> None:
        """Ask for the background event ``spec`` on the caller's entity to stop, wherever it
        runs (the request goes over the bus; ``on_cancel_requested`` acts on it)."""
        if not spec.background:
            raise EventNotFound(f"{spec.name} is not a background event")
        call = EventCall(entity_cls, spec, self.identity(entity_cls, ctx, args, spec), {}, ctx)
        async with self.uow_factory(entity_cls) as uow:
            authorize(spec, ctx, await target_of(uow, call))
        await self.background.cancel(call)

    async def on_cancel_requested(self, request: CancelRequested) -> None:
        """Bus subscriber (in every process): cancel the matching runs held here."""
        await self.background.on_cancel_requested(request)

    def running(self, entity_cls: type[Entity], key: str, event_name: str) -> int:
        """How many runs of a background event on one entity this process has going."""
        return self.background.running((entity_cls.namespace(), key, event_name))

    def running_tasks(self) -> list[asyncio.Task[None]]:
        """The background and streaming runs this process has going."""
        return [*self.background.running_tasks(), *(task for task in self._streams if not task.done())]

    def background_tasks(self) -> list[asyncio.Task[None]]:
        """The background runs this process has going."""
        return self.background.running_tasks()

    def cancel_background(self) -> int:
        """Cancel every background run of this process, as its cancel button would (the server
        stops); how many were cancelled."""
        return self.background.cancel_all()

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

    # --- the read side -----------------------------------------------------------------

    async def current_state(
        self, entity_classes: Iterable[type[Entity]], session_id: str
    ) -> dict[str, Any]:
        """The signals of every session/global entity a tab of ``session_id`` may show, as the
        store has them now (defaults for those not stored: after a restart, or expired)."""
        return await current_state(self.uow_factory, entity_classes, session_id, self.background.held)
