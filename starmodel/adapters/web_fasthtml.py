"""Old path of :mod:`starmodel.adapters.driving.web.fasthtml` (the web adapter), kept for
plugins that import its names."""

from starmodel.adapters.driving.web.fasthtml import LIVE_PATH, SESSION_KEY, USER_SCOPE_KEY, WebApp

__all__ = ["LIVE_PATH", "SESSION_KEY", "USER_SCOPE_KEY", "WebApp"]
