"""The theme picker of page chrome: a MonsterUI theme colour and a light / dark / system mode.

The choice is kept where MonsterUI's header script reads it at every page load (the
``__FRANKEN__`` JSON in localStorage, keys ``theme`` and ``mode``; no ``mode`` means "follow
the system"), and applied at once as classes on ``<html>``. Works with CDN and local assets:
it needs nothing but the franken-ui CSS the pages already load.
"""

from __future__ import annotations

from typing import Any

from fasthtml.common import Button, Div, Option, Script, Select
from monsterui.all import Theme

from starmodel.adapters.driving.web.security import NoncedElement

__all__ = ["MODES", "theme_picker"]

MODES = ("light", "dark", "system")

# One copy per page does the work (a second picker only re-syncs): it stores a choice, applies
# it, and keeps every picker showing the state of <html>, also after a change made in another
# tab (storage event) or, in system mode, by the operating system.
_SCRIPT = """
(function () {
  if (window.starmodelTheme) { window.starmodelTheme.sync(); return; }
  var KEY = "__FRANKEN__", root = document.documentElement;
  var media = window.matchMedia("(prefers-color-scheme: dark)");
  function stored() {
    try { return JSON.parse(localStorage.getItem(KEY) || "{}") || {}; } catch (e) { return {}; }
  }
  function themeClass() {
    return Array.prototype.find.call(root.classList, function (c) { return c.indexOf("uk-theme-") === 0; });
  }
  function sync() {
    var mode = stored().mode || "system", theme = themeClass();
    document.querySelectorAll("[data-starmodel-theme-picker]").forEach(function (picker) {
      var select = picker.querySelector("select");
      if (select && theme) select.value = theme;
      picker.querySelectorAll("button[data-mode]").forEach(function (button) {
        var on = button.getAttribute("data-mode") === mode;
        button.setAttribute("aria-pressed", String(on));
        button.classList.toggle("uk-active", on);
      });
    });
  }
  function apply(state) {
    if (state.theme) {
      var old = themeClass();
      while (old) { root.classList.remove(old); old = themeClass(); }
      root.classList.add(state.theme);
    }
    root.classList.toggle("dark", state.mode === "dark" || (!state.mode && media.matches));
    sync();
  }
  function choose(change) {
    var state = Object.assign(stored(), change);
    if (state.mode === "system") delete state.mode;
    try { localStorage.setItem(KEY, JSON.stringify(state)); } catch (e) {}
    apply(state);
  }
  // listeners on the document, not inline handlers: a Content-Security-Policy refuses those
  document.addEventListener("change", function (e) {
    var select = e.target.closest && e.target.closest("[data-starmodel-theme-picker] select");
    if (select) choose({theme: select.value});
  });
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-starmodel-theme-picker] button[data-mode]");
    if (button) choose({mode: button.getAttribute("data-mode")});
  });
  media.addEventListener("change", function () { apply(stored()); });
  window.addEventListener("storage", function (e) { if (e.key === KEY) apply(stored()); });
  window.starmodelTheme = {choose: choose, sync: sync};
  sync();
})();
"""


def theme_picker(cls: str = "", **kwargs: Any) -> Any:
    """A compact theme-colour select and a light / dark / system button group.

    Args:
        cls: extra classes on the outer ``div`` (e.g. ``"ml-auto"`` in a header row).
        **kwargs: extra attributes of the outer ``div`` (e.g. ``id``).
    """
    select = Select(
        *[Option(theme.name.capitalize(), value=f"uk-theme-{theme.name}") for theme in Theme],
        cls="uk-select", aria_label="Theme colour",
    )
    modes = Div(
        *[
            Button(mode.capitalize(), type="button", data_mode=mode, aria_pressed="false",
                   cls="uk-btn uk-btn-default")
            for mode in MODES
        ],
        cls="uk-btn-group", role="group", aria_label="Colour mode",
    )
    # The select sits in a sized box: franken-ui gives .uk-select the full width.
    return Div(
        Div(select, cls="w-28"), modes, NoncedElement(Script(_SCRIPT)),
        cls=f"flex items-center gap-2 {cls}".strip(), data_starmodel_theme_picker="", **kwargs,
    )
