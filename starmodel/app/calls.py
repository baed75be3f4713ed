"""Events run from server code (a bus subscriber, a periodic job) rather than by a tab, and the
periodic jobs that run them: what ``sm.call`` and ``sm.every`` do."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from starmodel.app.dispatcher import Dispatcher
from starmodel.app.jobs import JobRunner
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import ConfigurationError, EventNotFound
from starmodel.core.events import BoundEvent

__all__ = ["ServerCalls"]


class ServerCalls:
    """Runs events as a tab would (same validation, unit of work, retries and broadcast), and
    registers periodic jobs with the job runner."""

    def __init__(self, dispatcher: Dispatcher, jobs: JobRunner) -> None:
        self.dispatcher = dispatcher
        self.jobs = jobs

    async def call(
        self,
        entity_cls: type[Entity],
        event_name: str,
        /,
        *,
        key: Any = None,
        session_id: str = "server",
        **params: Any,
    ) -> list[Any]:
        """The outputs of ``entity_cls``'s event ``event_name`` (every step's, for a streaming
        event); parameters are passed as a tab passes them, as JSON."""
        spec = entity_cls.events().get(event_name)
        if spec is None:
            raise EventNotFound(f"{entity_cls.__name__} has no event {event_name!r}")
        args = {name: json.dumps(value, default=str) for name, value in params.items()}
        if key is not None:
            args["_key"] = str(key)
        result = await self.dispatcher.dispatch(entity_cls, spec, CallContext(session_id=session_id), args)
        if result.stream is None:
            return list(result.outputs)
        return [item async for step in result.stream for item in step]

    def every(
        self, seconds: float, target: BoundEvent | None = None, /, *, name: str | None = None, **params: Any
    ) -> Any:
        """A job running ``target`` (an event) every ``seconds``; without ``target``, a
        decorator registering a function (sync or async) as the job."""
        if target is not None:
            if not isinstance(target, BoundEvent):
                raise TypeError("every(seconds, Entity.event): pass an event, or use it as a decorator")
            entity_cls, spec = target.owner, target.spec
            key = entity_cls.route_key(target.instance) if target.instance is not None else None
            if entity_cls.options().scope == "session":
                raise ConfigurationError(
                    f"every(): {entity_cls.__name__} is per session; a job can run events of "
                    "global entities or of records"
                )

            async def run_event() -> None:
                await self.call(entity_cls, spec.name, key=key, **params)

            self.jobs.add(name or f"{entity_cls.__name__}.{spec.name}", seconds, run_event)
            return target

        def register(fn: Callable[[], Any]) -> Callable[[], Any]:
            async def run_function() -> None:
                result = fn()
                if inspect.isawaitable(result):
                    await result

            self.jobs.add(name or f"{fn.__module__}.{fn.__qualname__}", seconds, run_function)
            return fn

        return register
