"""Live records: lists and rows of keyed entities (SQL) that follow every change.

A page shows records with ``sm.live_list(Todo, todos, render)``: the list element asks the
tab's live stream to watch ``Todo`` (the signal ``smwatch.todo``), and ``render`` is kept to
draw rows created later. After each commit every watching tab gets the new values (signals
``$todo.<key>.<field>``), new rows appended to the list, deleted rows removed.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from datastar_py.consts import ElementPatchMode
from datastar_py.sse import ServerSentEventGenerator as SSE
from fasthtml.common import Div, to_xml
from pydantic import ValidationError

from starmodel.adapters.driving.datastar.sse import patch_signals_event
from starmodel.adapters.driving.live.stream import LiveHub
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import ConfigurationError, StarModelError
from starmodel.core.messages import EntityChanged

__all__ = [
    "LIVE_SIGNAL",
    "RESYNC_LIMIT",
    "WATCH_SIGNAL",
    "LiveLists",
    "record_topic",
    "stamp_event",
    "stamp_topic",
]

WATCH_SIGNAL = "smwatch"
LIVE_SIGNAL = "smlive"
"""``smlive.<namespace>`` changes whenever a record of that class changes (views refresh on it)."""
RESYNC_LIMIT = 200
"""How many records a live list shows again after a full resync, unless it says otherwise."""
Render = Callable[[Any], Any]
Lister = Callable[[type[Entity], str | None, int], Awaitable[list[Entity]]]
log = logging.getLogger("starmodel.live")


def record_topic(namespace: str, owner: str | None = None) -> str:
    """Record changes of a class; a private class's go per owning session."""
    return f"entity:{namespace}" if owner is None else f"entity:{namespace}:{owner}"


def stamp_topic(namespace: str, owner: str | None = None) -> str:
    """Just "something changed" for a record class (what generated views watch)."""
    return f"stamp:{namespace}" if owner is None else f"stamp:{namespace}:{owner}"


def stamp_event(namespace: str) -> str:
    """A new value of ``smlive.<namespace>``: generated lists and detail views of that class
    fetch themselves again when it changes."""
    return patch_signals_event({LIVE_SIGNAL: {namespace: secrets.token_hex(6)}})


class LiveLists:
    """Remembers how each record class is drawn in lists, and pushes record changes."""

    def __init__(self, hub: LiveHub, entities: Callable[[], list[type[Entity]]]) -> None:
        self.hub = hub
        self.entities = entities
        self.renderers: dict[str, tuple[Render, str]] = {}
        self.limits: dict[str, int] = {}

    def row_view(
        self, entity_cls: type[Entity], *, container: str | None = None
    ) -> Callable[[Render], Render]:
        """Decorator: how a row of ``entity_cls`` is drawn, known from start-up on (so rows
        created while no page has been drawn yet, e.g. after a restart, still appear)."""

        def register(render: Render) -> Render:
            namespace = entity_cls.namespace()
            self.renderers[namespace] = (render, container or f"{namespace}-list")
            return render

        return register

    def live_list(
        self,
        entity_cls: type[Entity],
        records: Iterable[Entity],
        render: Render | None = None,
        *,
        tag: Callable[..., Any] = Div,
        id: str | None = None,
        limit: int = RESYNC_LIMIT,
        **attrs: Any,
    ) -> Any:
        """A list element of ``render(record)`` rows that stays current in every tab
        (``render`` defaults to the ``row_view`` registered for the class). A tab that
        missed changes (its live stream was away too long) gets the list redrawn with the
        first ``limit`` records in key order.

        Each row's root element should carry ``id=record.dom_id()`` (so a deleted record's row
        can be removed) and show values through signals (``data-text=todo.sig.title``) so
        updates apply in place.
        """
        namespace = entity_cls.namespace()
        known = self.renderers.get(namespace)
        if render is None:
            if known is None:
                raise ConfigurationError(
                    f"live_list({entity_cls.__name__}): pass render, or register one with row_view"
                )
            render = known[0]
        container = id or (known[1] if known else f"{namespace}-list")
        self.renderers[namespace] = (render, container)
        self.limits[namespace] = limit
        watch = json.dumps({WATCH_SIGNAL: {namespace: True}})
        return tag(*(render(record) for record in records), id=container, data_signals=watch, **attrs)

    def watched_topics(self, signals: Any, session_id: str, user: Any = None) -> set[str]:
        """The record topics a live stream asked for: only known record classes count; a class's
        values only for a caller its ``read`` policy admits (``user``: the signed-in user, if
        any), and a private class's only for the stream's own session. The bare "something
        changed" stamps (``"stamp"``) carry no data and are given to anybody: generated views
        then fetch through their own policy-checked routes."""
        if not isinstance(signals, dict) or not isinstance(signals.get(WATCH_SIGNAL), dict):
            return set()
        keyed = {cls.namespace(): cls for cls in self.entities() if cls.options().scope == "id"}
        caller = CallContext(session_id=session_id, user=user)
        topics = set()
        for namespace, how in signals[WATCH_SIGNAL].items():
            cls = keyed.get(namespace)
            if cls is None:
                continue
            owner = session_id if cls.options().private else None
            if how == "stamp":
                topics.add(stamp_topic(namespace, owner))
            elif cls.permits("read", caller):
                topics.add(record_topic(namespace, owner))
        return topics

    async def on_entity_changed(self, change: EntityChanged) -> None:
        """Bus subscriber: one committed record change -> one message for its watchers."""
        if change.scope != "id":
            return
        namespace, key = change.namespace, change.key
        if change.deleted:
            body = patch_signals_event({namespace: {key: None}})
            body += str(SSE.patch_elements(selector=f"#{namespace}-{key}", mode=ElementPatchMode.REMOVE))
        else:
            body = patch_signals_event({namespace: {key: change.changes}})
            if change.created and namespace in self.renderers:
                row = self._row(namespace, key, change.changes)
                if row is not None:
                    render, container = self.renderers[namespace]
                    body += str(
                        SSE.patch_elements(
                            to_xml(render(row)), selector=f"#{container}", mode=ElementPatchMode.APPEND
                        )
                    )
        self.hub.publish(record_topic(namespace, change.owner), {}, raw=body)
        self.hub.publish(stamp_topic(namespace, change.owner), {}, raw=stamp_event(namespace))

    async def resync_body(self, topics: Iterable[str], lister: Lister) -> str:
        """For a tab that needs a full resync: every watched record list redrawn as the store
        has it now (values as signals, rows replacing the list's content)."""
        body = ""
        for topic in sorted(topics):
            kind, _, rest = topic.partition(":")
            if kind == "stamp":  # generated views: they fetch themselves again
                body += stamp_event(rest.partition(":")[0])
                continue
            if kind != "entity":
                continue
            namespace, _, owner = rest.partition(":")
            entity_cls = next((c for c in self.entities() if c.namespace() == namespace), None)
            if entity_cls is None:
                continue
            try:
                records = await lister(entity_cls, owner or None, self.limits.get(namespace, RESYNC_LIMIT))
            except StarModelError as exc:  # its store is down: the tab keeps what it shows
                log.info("live list %s not resynced: %s", namespace, exc)  # the outage is logged once
                continue
            body += patch_signals_event({namespace: {str(r._sm_key): r.public_state() for r in records}})
            if namespace in self.renderers:
                render, container = self.renderers[namespace]
                rows = "".join(to_xml(render(record)) for record in records)
                body += str(SSE.patch_elements(rows, selector=f"#{container}", mode=ElementPatchMode.INNER))
        return body

    def _row(self, namespace: str, key: str, state: dict[str, Any]) -> Entity | None:
        entity_cls = next((c for c in self.entities() if c.namespace() == namespace), None)
        if entity_cls is None:
            return None
        try:
            entity = entity_cls.model_validate(state)
        except ValidationError:
            entity = entity_cls.model_construct(**state)
        entity._sm_key = key
        return entity
