"""The StarModel showcase: `starmodel run demo` serves it.

A header with the navigation on every page; a home page that says what StarModel is; a page per
feature (session and global state, streaming and background work, live SQL records, Redis with a
TTL, browser-stored preferences, server actions, generated CRUD and admin, sign-in), each with its
live widget beside the code that makes it; and a live team board that uses several together.
Open it in two browsers (two sessions); with ``REDIS_URL`` set, run it as several processes and
they share everything.

The entities live in ``demo/state.py`` (counters, long task), ``demo/todos.py``,
``demo/activity.py``, ``demo/batteries.py``, ``demo/products.py`` and ``demo/board.py``; the pages
in ``demo/pages.py``.
"""

from __future__ import annotations

from demo.pages import TODOS_SHOWN, install_showcase
from demo.state import Counter, LongTask, SharedCounter
from demo.todos import database_url
from starmodel import StarModel

__all__ = ["TODOS_SHOWN", "Counter", "LongTask", "SharedCounter", "app", "auth", "sm"]

# Arguments override the environment, so DATABASE_URL is read here: it still wins when set.
sm = StarModel(title="StarModel demo", database_url=database_url())
auth = install_showcase(sm)  # every page, the shop and admin, the board, its jobs and seeds
app = sm.app
