"""Who is calling an event: what the dispatcher knows about the request."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starmodel.core.entity import Entity

__all__ = ["CallContext", "request_signals"]

#: The Datastar signals the running event's request carried (where browser-stored entities
#: come from); ``None`` outside a request.
request_signals: ContextVar[Mapping[str, Any] | None] = ContextVar("sm_request_signals", default=None)


@dataclass
class CallContext:
    """The caller of an event, as seen by ``allow`` hooks and the unit of work.

    Attributes:
        session_id: the signed browser session (one per browser, shared by its tabs).
        tab_id: the tab that sent the request, when its page runs StarModel's script.
        user: the signed-in user, when an auth plugin provides one. For an event it is looked
            up only when something decides on it (the event's ``allow`` rule, its entity's
            policy, its ``rate``, its entity's journal); otherwise it is left ``None``.
        entity: the entity the event runs on (set once it is loaded).
        extra: adapter-specific facts (client address, headers) for custom policies.
    """

    session_id: str
    tab_id: str | None = None
    user: Any = None
    entity: Entity | None = None
    extra: dict[str, Any] = field(default_factory=dict)
