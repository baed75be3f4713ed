"""``POST /_starmodel/client/{namespace}/restore``: the page sends what it kept for a
browser-stored entity (``CLIENT_SESSION`` / ``CLIENT_LOCAL``) and gets it back checked, with its
computed values, or an error toast and the defaults to store instead."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from starmodel.adapters.driving.datastar.sse import patch_signals_event
from starmodel.adapters.driving.web.requests import EventRequest, SSEAnswer, error_response
from starmodel.core.client_state import read_client_state
from starmodel.core.entity import Entity
from starmodel.core.errors import ClientStateInvalid, ValidationFailed

__all__ = ["restore_answer"]

log = logging.getLogger("starmodel.web")


async def restore_answer(
    request: EventRequest, entities: Iterable[type[Entity]], refuse: Callable[[EventRequest], str | None]
) -> SSEAnswer:
    """The answer to a restore request; ``refuse`` says why a request may not be answered."""
    refusal = refuse(request)
    if refusal:
        return error_response(403, refusal)
    namespace = request.scope["path_params"]["namespace"]
    found = [c for c in entities if c.namespace() == namespace and c.options().store.is_client]
    if not found:
        return error_response(404, f"No browser-stored entity {namespace!r}")
    entity_cls = found[0]
    try:
        signals, _ = await request.signals_and_args()
        raw = signals.get(namespace)
        entity = entity_cls() if raw is None else read_client_state(entity_cls, raw)
    except ClientStateInvalid as exc:
        log.info("browser state of %s refused and reset: %s", namespace, exc)
        return error_response(422, exc.message, namespace, exc.errors, {namespace: exc.reset})
    except ValidationFailed as exc:
        return error_response(400, exc.message, None, exc.errors)
    return SSEAnswer(200, patch_signals_event({namespace: entity.public_state()}), [])
