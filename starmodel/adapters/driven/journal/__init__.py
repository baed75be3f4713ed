"""Journals of committed changes: in process memory, in Redis, in a SQL table."""
