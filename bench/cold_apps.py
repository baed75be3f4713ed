"""The baseline of ``cold_start.py``: a FastHTML app of one page, served by uvicorn."""

from __future__ import annotations

from fasthtml.common import FastHTML, P

__all__ = ["app"]

app = FastHTML()


@app.get("/")
def home() -> P:
    return P("hello")
