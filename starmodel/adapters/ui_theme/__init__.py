"""Old path of :mod:`starmodel.adapters.driving.ui.theme`; ``starmodel.ui`` exports the same
``theme_picker``."""

from starmodel.adapters.driving.ui.theme import MODES, theme_picker

__all__ = ["MODES", "theme_picker"]
