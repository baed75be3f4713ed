"""Resync: the current state of the entities a tab shows, for a tab whose live stream (re)opens."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starmodel.app.uow import UnitOfWork
from starmodel.core.entity import Entity
from starmodel.core.errors import StarModelError

__all__ = ["GLOBAL_KEY", "current_state"]

log = logging.getLogger("starmodel.dispatcher")
GLOBAL_KEY = "global"


Running = Callable[[tuple[str, str, str]], Awaitable[bool]]


async def current_state(
    uow_factory: Callable[[type[Entity]], UnitOfWork],
    entity_classes: Iterable[type[Entity]],
    session_id: str,
    running: Running | None = None,
) -> dict[str, Any]:
    """The signals of every session/global entity a tab of ``session_id`` may show, as the
    store has them now (defaults for those not stored: after a restart, or expired), with
    ``_running`` of their exclusive background events when ``running`` tells."""
    state: dict[str, Any] = {}
    for entity_cls in entity_classes:
        scope = entity_cls.options().scope
        if scope == "id" or entity_cls.options().store.is_client:
            continue  # records come with their lists; browser-stored state is the browser's
        key = session_id if scope == "session" else GLOBAL_KEY
        try:
            async with uow_factory(entity_cls) as uow:
                entity = await uow.load(entity_cls, key)  # defaults if nothing is stored
        except StarModelError as exc:  # its store is down: the tab keeps what it shows
            # (info: every tab opening during an outage comes here; the store's adapter
            # reports the outage itself once)
            log.info("%s not resynced: %s", entity_cls.__name__, exc)
            continue
        signals = entity.signals()
        exclusive = [spec.name for spec in entity_cls.events().values() if spec.exclusive]
        if exclusive and running is not None:
            namespace = entity_cls.namespace()
            try:
                signals[namespace]["_running"] = {
                    name: await running((namespace, key, name)) for name in exclusive
                }
            except StarModelError as exc:
                log.info("%s: runs not resynced: %s", entity_cls.__name__, exc)
        state.update(signals)
    return state
