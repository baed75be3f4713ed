"""Per-event rate limits (``@event(rate="10/minute")``) on the web side: who a call is
counted for, and the refusal past the limit.

A caller is the signed-in user when there is one, else the browser session. A window starts
with the caller's first call and lasts the rate's period; a call past the limit is refused
with ``RateLimited`` (429, ``Retry-After``: the seconds left in the window) before the event
loads anything, so it changes nothing. The counts are kept by a ``CallCounter`` (memory or
Redis), chosen by the composition root.
"""

from __future__ import annotations

import hashlib
import math

from starmodel.core.context import CallContext
from starmodel.core.errors import RateLimited
from starmodel.core.rates import CallCounter, Rate

__all__ = ["EventRateLimiter", "caller_key"]


def caller_key(ctx: CallContext) -> str:
    """Who a call is counted for: ``user:<id>`` when signed in, else a digest of the session
    id (no session id sits in clear in the counters)."""
    user_id = getattr(ctx.user, "id", None) if ctx.user is not None else None
    if user_id is not None:
        return f"user:{user_id}"
    digest = hashlib.sha256(ctx.session_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"session:{digest}"


class EventRateLimiter:
    """Checks an event's ``rate`` for the caller of one call (raises ``RateLimited``)."""

    def __init__(self, counter: CallCounter) -> None:
        self.counter = counter

    async def check(self, namespace: str, event_name: str, rate: Rate, ctx: CallContext) -> None:
        """Count this call; raise ``RateLimited`` when it is past ``rate``."""
        calls, left = await self.counter.count(f"{namespace}.{event_name}:{caller_key(ctx)}", rate)
        if calls > rate.calls:
            wait = max(1, math.ceil(left))
            raise RateLimited(
                f"Too many calls of {event_name} (at most {rate}); try again in {wait} s",
                retry_after=wait,
            )
