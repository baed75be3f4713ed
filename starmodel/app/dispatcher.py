"""The dispatcher: a browser request for an event -> identity, parameters, unit of work, outputs."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from starmodel.app.locks import KeyedLocks
from starmodel.app.uow import UnitOfWork
from starmodel.core.actions import PatchSignals
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import (
    ConcurrencyError,
    EntityNotFound,
    PermissionDenied,
    ValidationFailed,
)
from starmodel.core.events import EventSpec

__all__ = ["Dispatcher", "EventResult", "UowFactory"]

UowFactory = Callable[[type[Entity]], UnitOfWork]
GLOBAL_KEY = "global"


@dataclass
class EventResult:
    """What an event produced: a list of outputs, or a stream of lists (one per ``yield``).

    Outputs are ``PatchSignals`` (changed state), components (anything with ``__html__`` or
    ``__ft__``) and actions (``redirect``, ``toast``...), in the order they should reach the page.
    """

    spec: EventSpec
    outputs: list[Any] = field(default_factory=list)
    stream: AsyncIterator[list[Any]] | None = None


class Dispatcher:
    """Runs ``@event`` methods for requests; knows nothing of HTTP.

    Args:
        uow_factory: a fresh unit of work for an entity class (one per event).
        retries: how often an event that lost a write race is re-run.
    """

    def __init__(self, uow_factory: UowFactory, retries: int = 8) -> None:
        self.uow_factory = uow_factory
        self.retries = retries
        self.locks = KeyedLocks()

    # --- identity and parameters -------------------------------------------------------

    @staticmethod
    def identity(entity_cls: type[Entity], ctx: CallContext, args: Mapping[str, str]) -> str:
        """The key of the entity instance a request addresses."""
        scope = entity_cls.options().scope
        if scope == "session":
            return ctx.session_id
        if scope == "global":
            return GLOBAL_KEY
        key = args.get("_key")
        if not key:
            raise EntityNotFound(f"{entity_cls.__name__}: which record? the request has no key")
        return str(key)

    @staticmethod
    def bind(
        entity_cls: type[Entity],
        spec: EventSpec,
        args: Mapping[str, str],
        signals: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Parameter values from the action's arguments, else the entity's signals; validated."""
        unknown = [name for name in args if name != "_key" and name not in spec.params]
        if unknown:
            raise ValidationFailed(
                {name: "Unexpected parameter" for name in unknown},
                f"Invalid input for {spec.name}",
            )
        own = signals.get(entity_cls.namespace()) if signals else None
        if not isinstance(own, Mapping):
            own = {}
        strings = spec.string_params() if args else set()
        values: dict[str, Any] = {}
        for name in spec.params:
            if name in args:
                values[name] = _decode_argument(args[name], as_string=name in strings)
            elif name in own:
                values[name] = own[name]
        return spec.validate_params(values)

    # --- running events ----------------------------------------------------------------

    async def dispatch(
        self,
        entity_cls: type[Entity],
        spec: EventSpec,
        ctx: CallContext,
        args: Mapping[str, str],
        signals: Mapping[str, Any] | None = None,
    ) -> EventResult:
        """Validate and run one event; raise ``StarModelError`` subclasses for the caller."""
        key = self.identity(entity_cls, ctx, args)
        params = self.bind(entity_cls, spec, args, signals)
        if spec.kind == "asyncgen":
            await self._check_allowed(entity_cls, spec, ctx, key)
            return EventResult(spec, stream=self._stream(entity_cls, spec, ctx, key, params))
        namespace = entity_cls.namespace()
        for attempt in range(self.retries):
            try:
                async with self.locks.hold((namespace, key)), self.uow_factory(entity_cls) as uow:
                    entity = await uow.load(entity_cls, key)
                    _authorize(spec, ctx, entity)
                    returned = await _call(spec, entity, params)
                    changes = await uow.commit(entity, ctx)
                break
            except ConcurrencyError:
                if attempt == self.retries - 1:
                    raise
        outputs: list[Any] = [PatchSignals({namespace: changes})] if changes else []
        outputs.extend(flatten(returned))
        return EventResult(spec, outputs=outputs)

    async def _check_allowed(
        self, entity_cls: type[Entity], spec: EventSpec, ctx: CallContext, key: str
    ) -> None:
        if spec.allow is None:
            return
        async with self.uow_factory(entity_cls) as uow:
            _authorize(spec, ctx, await uow.load(entity_cls, key))

    async def _stream(
        self,
        entity_cls: type[Entity],
        spec: EventSpec,
        ctx: CallContext,
        key: str,
        params: dict[str, Any],
    ) -> AsyncIterator[list[Any]]:
        namespace = entity_cls.namespace()
        async with self.locks.hold((namespace, key)), self.uow_factory(entity_cls) as uow:
            entity = await uow.load(entity_cls, key)
            _authorize(spec, ctx, entity)
            generator = spec.fn(entity, **params)
            try:
                async for item in _guard(generator):
                    changes = await uow.commit(entity, ctx)
                    outputs: list[Any] = [PatchSignals({namespace: changes})] if changes else []
                    outputs.extend(flatten(item))
                    yield outputs
                changes = await uow.commit(entity, ctx)
                if changes:
                    yield [PatchSignals({namespace: changes})]
            finally:
                await generator.aclose()

    async def current_state(
        self, entity_classes: Iterable[type[Entity]], session_id: str
    ) -> dict[str, Any]:
        """The signals of every stored session/global entity a tab of ``session_id`` may show."""
        state: dict[str, Any] = {}
        for entity_cls in entity_classes:
            scope = entity_cls.options().scope
            if scope == "id":
                continue
            key = session_id if scope == "session" else GLOBAL_KEY
            async with self.uow_factory(entity_cls) as uow:
                entity = await uow.repository.get(entity_cls, key)
            if entity is not None:
                state.update(entity.signals())
        return state


async def _guard(generator: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Turn pydantic errors raised inside an event into ``ValidationFailed``."""
    try:
        async for item in generator:
            yield item
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, "Invalid value") from None


async def _call(spec: EventSpec, entity: Entity, params: dict[str, Any]) -> Any:
    try:
        result = spec.fn(entity, **params)
        if inspect.isawaitable(result):
            result = await result
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, "Invalid value") from None
    return result


def _authorize(spec: EventSpec, ctx: CallContext, entity: Entity) -> None:
    ctx.entity = entity
    if spec.allow is not None and not spec.allow(ctx):
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


def _decode_argument(raw: str, *, as_string: bool) -> Any:
    """Action arguments are JSON in the query string; a bare word is taken as a string."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if as_string and not isinstance(value, str):
        return raw
    return value
