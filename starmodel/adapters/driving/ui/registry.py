"""What ``sm.views``, ``sm.crud`` and ``sm.admin`` set up: the views an app exposes, their
action routes, generated pages and JSON APIs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starmodel.adapters.driving.ui.admin import Admin
from starmodel.adapters.driving.ui.mount import UiMount
from starmodel.adapters.driving.ui.pages import RecordPages, page_layout
from starmodel.adapters.driving.ui.views import EntityViews
from starmodel.adapters.driving.ui.wording import plural
from starmodel.core.entity import Entity
from starmodel.core.errors import ConfigurationError
from starmodel.core.policy import Rule

if TYPE_CHECKING:
    from starmodel.adapters.driving.ui.api import JsonApi
    from starmodel.adapters.driving.web.fasthtml import WebApp

__all__ = ["UI_PREFIX", "UiRegistry"]

UI_PREFIX = "/_starmodel/ui"


class UiRegistry:
    """The generated UI of one app."""

    def __init__(self, web: WebApp) -> None:
        self.web = web
        self._mount: UiMount | None = None
        self._pages: RecordPages | None = None
        self.classes: dict[type[Entity], type[EntityViews]] = {}
        self.apis: list[JsonApi] = []
        self.admin_area: Admin | None = None

    @property
    def mount(self) -> UiMount:
        if self._mount is None:
            self._mount = UiMount(self.web, UI_PREFIX)
        return self._mount

    def views(
        self,
        entity_cls: type[Entity],
        views_class: type[EntityViews] | None = None,
        *,
        page_path: str | None = None,
    ) -> EntityViews:
        """The generated views of ``entity_cls`` (its form, list and detail view), with their
        action routes; calling it again gives the same views."""
        known = self.mount.views.get(entity_cls.namespace())
        if known is not None and known.entity_cls is not entity_cls:
            raise ConfigurationError(
                f"{entity_cls.__name__} and {known.entity_cls.__name__} share a namespace"
            )
        if known is not None and views_class is None and page_path is None:
            return known
        cls = views_class or self.classes.get(entity_cls, EntityViews)
        self.classes[entity_cls] = cls
        path = page_path or (known.page_path if known else None)
        return self.mount.add(cls(entity_cls, self.mount, page_path=path))

    def crud(
        self,
        entity_cls: type[Entity],
        *,
        path: str | None = None,
        api: str | bool | None = True,
        views_class: type[EntityViews] | None = None,
    ) -> EntityViews:
        """Generated pages at ``path`` (default ``/<plural namespace>``) and a JSON API at
        ``api`` (default ``/api/<plural namespace>``; ``False``: none)."""
        if entity_cls.options().scope != "id":
            raise ConfigurationError(
                f"crud({entity_cls.__name__}): generated CRUD is for records (SQL, or scope 'id'); "
                "show session and global entities with sm.views() in your own pages"
            )
        name = plural(entity_cls.namespace())
        page_path = (path or f"/{name}").rstrip("/")
        if not page_path.startswith("/"):
            raise ConfigurationError(f"crud({entity_cls.__name__}): path must start with '/'")
        views = self.views(entity_cls, views_class, page_path=page_path)
        if self._pages is None:
            self._pages = RecordPages(
                self.web,
                self.mount,
                lambda request, title, content: page_layout(self.web, request, title, content),
            )
        self._pages.install_crud(views)
        if api:
            from starmodel.adapters.driving.ui.api import JsonApi

            api_path = api if isinstance(api, str) else f"/api/{name}"
            self.apis.append(JsonApi(self.web, views, api_path, self))
        return views

    def admin(self, *, path: str = "/admin", allow: Rule | None = None, title: str = "Admin") -> Admin:
        """The admin area: every entity of the app, behind ``allow`` (default: staff users)."""
        if self.admin_area is not None:
            raise ConfigurationError(f"this app already has an admin at {self.admin_area.path}")
        self.admin_area = Admin(
            self.web,
            path=path,
            allow=allow,
            title=title,
            views_class=lambda entity_cls: self.classes.get(entity_cls, EntityViews),
        )
        return self.admin_area
