"""The generated views of ``User`` (the admin's user pages): a user's detail ends with a
"Sign out everywhere" button."""

from __future__ import annotations

from typing import Any, ClassVar

from fasthtml.common import Div

from starmodel.adapters.driving.ui.views import EntityViews
from starmodel.contrib.auth.pages import AuthPaths, sign_out_everywhere_button
from starmodel.core.entity import Entity

__all__ = ["UserViews"]


class UserViews(EntityViews):
    """``EntityViews`` of ``User``, for the app whose routes are ``paths``
    (``UserViews.serving(paths)``)."""

    paths: ClassVar[AuthPaths | None] = None

    @classmethod
    def serving(cls, paths: AuthPaths) -> type[UserViews]:
        """These views, with buttons that post to ``paths``."""
        return type(cls.__name__, (cls,), {"paths": paths, "__module__": cls.__module__})

    def detail(self, record: Entity | None, *, key: str = "") -> Any:
        shown = super().detail(record, key=key)
        user_id = getattr(record, "id", None)
        if self.paths is None or record is None or user_id is None:
            return shown
        path = self.paths.sign_out_everywhere(user_id)
        return shown(Div(sign_out_everywhere_button(path, str(getattr(record, "email", ""))), cls="pt-4"))
