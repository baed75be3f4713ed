"""Datastar's page syntax for the core (``core.markup.PageSyntax``): ``@post('/x')`` actions and
the ``data-signals`` element of an entity, with the restore hooks of a browser-kept entity."""

from __future__ import annotations

import html
from typing import Any

from starmodel.core.json_text import json_text
from starmodel.core.markup import ClientKept, use_syntax

__all__ = ["CLIENT_RESTORE_PATH", "DatastarSyntax"]

CLIENT_RESTORE_PATH = "/_starmodel/client/{namespace}/restore"
"""Where the page sends a browser-kept entity's saved state, to have it checked and applied."""


class DatastarSyntax:
    """Writes actions and entity elements as Datastar reads them."""

    def action(self, method: str, url: str, *, template: bool = False) -> str:
        return f"@{method}(`{url}`)" if template else f"@{method}('{url}')"

    def entity_element(self, anchor: str, signals: dict[str, Any], kept: ClientKept | None) -> str:
        payload = html.escape(json_text(signals), quote=True)
        extra = ""
        if kept is not None:  # restored from browser storage, checked by the server
            path = CLIENT_RESTORE_PATH.format(namespace=kept.anchor)
            restore = html.escape(self.action("post", path), quote=True)
            extra = (
                f' data-starmodel-client="{kept.anchor}" data-starmodel-storage="{kept.storage}"'
                f' data-starmodel-fields="{",".join(kept.fields)}" data-init="{restore}"'
                f' data-on:starmodel-restore="{restore}"'
            )
        return f'<div id="sm-signals-{html.escape(anchor)}" hidden data-signals="{payload}"{extra}></div>'


use_syntax(DatastarSyntax())
