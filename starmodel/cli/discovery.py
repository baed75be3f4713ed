"""The CLI's way to find the user's app: ``starmodel.discovery``, with what goes wrong said as
one CLI error line."""

from __future__ import annotations

import click

from starmodel.core.errors import StarModelError
from starmodel.discovery import AppNotFound, FoundApp
from starmodel.discovery import find_app as find_app_or_raise

__all__ = ["AppNotFound", "FoundApp", "find_app"]


def find_app(target: str | None) -> FoundApp:
    """``starmodel.discovery.find_app``; ``click.ClickException`` when the app cannot be used."""
    try:
        return find_app_or_raise(target)
    except StarModelError as exc:
        raise click.ClickException(str(exc)) from None
