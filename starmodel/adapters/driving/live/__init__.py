"""Live streams: a tab's long-lived SSE stream, and lists of records that follow changes."""
