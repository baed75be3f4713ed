"""Adapters: everything that touches a technology (web, SSE, storage, UI)."""
