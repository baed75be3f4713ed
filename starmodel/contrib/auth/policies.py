"""Permission rules of the auth plugin, for ``@event(allow=...)`` and ``model_config["policy"]``."""

from __future__ import annotations

from starmodel.core.context import CallContext

__all__ = ["signed_in", "staff"]


def signed_in(ctx: CallContext) -> bool:
    """Somebody is signed in: ``@event(allow=signed_in)``."""
    return ctx.user is not None


def staff(ctx: CallContext) -> bool:
    """The caller is a signed-in staff user: ``@event(allow=staff)``."""
    return ctx.user is not None and getattr(ctx.user, "is_staff", False) is True
