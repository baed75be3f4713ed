"""Keeps password hashes out of log lines: database drivers log statements with their
parameters at DEBUG/INFO (SQLAlchemy's engine, aiosqlite), and an account's insert carries one."""

from __future__ import annotations

import logging
import re

__all__ = ["HASH_PATTERN", "RedactPasswordHashes", "hide_password_hashes"]

HASH_PATTERN = re.compile(r"\$argon2(?:id|i|d)\$[A-Za-z0-9+/=$,.-]*")
_LOGGERS = ("sqlalchemy.engine.Engine", "aiosqlite", "asyncpg")


class RedactPasswordHashes(logging.Filter):
    """Replaces anything shaped like an argon2 hash in a record with ``<password hash>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot be formatted is left to the handler
            return True
        if "$argon2" in text:
            record.msg, record.args = HASH_PATTERN.sub("<password hash>", text), None
        return True


def hide_password_hashes() -> None:
    """Put the filter on the loggers that write SQL parameters (once per process)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactPasswordHashes) for f in logger.filters):
            logger.addFilter(RedactPasswordHashes())
