"""Generated views: an entity's form, list and detail view (MonsterUI), usable in your own pages
and overridable per field or per entity; ``sm.crud(...)`` and ``sm.admin()`` build pages on them.

Example:

    from starmodel.ui import EntityViews

    class ProductViews(EntityViews):
        per_page = 10
        columns = ("name", "price", "stock")
        cells = {"price": lambda p: f"€ {p.price:.2f}"}

    sm.crud(Product, views_class=ProductViews)      # /products, /api/products
    views = sm.views(Product)                        # in a page: views.form(), await views.table_for(request)
"""

from starmodel.adapters.driving.ui.admin import Admin, is_staff
from starmodel.adapters.driving.ui.fields import FieldView, field_view, render_control
from starmodel.adapters.driving.ui.theme import theme_picker
from starmodel.adapters.driving.ui.views import EntityViews, InputRenderer
from starmodel.core.fields import FieldUI

__all__ = [
    "Admin",
    "EntityViews",
    "FieldUI",
    "FieldView",
    "InputRenderer",
    "field_view",
    "is_staff",
    "render_control",
    "theme_picker",
]
