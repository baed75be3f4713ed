"""Datastar answers: outputs as SSE events, toasts as HTML fragments."""
