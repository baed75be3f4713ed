"""What a failed SQL statement means to the caller: a conflict to re-run, a refused value
(422), a database that is unavailable or behind the code (503), or a failed query (500)."""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError

from starmodel.core.entity import Entity
from starmodel.core.errors import ConcurrencyError, StarModelError, StoreUnavailable, ValidationFailed

__all__ = ["check_whole_numbers", "first_line", "integrity_error", "sqlstate", "statement_error"]

log = logging.getLogger("starmodel.sql")


def sqlstate(exc: DBAPIError) -> str:
    """The SQLSTATE code of a PostgreSQL error (``""`` if the driver gives none)."""
    for source in (exc.orig, getattr(exc.orig, "__cause__", None)):
        code = getattr(source, "sqlstate", None) or getattr(source, "pgcode", None)
        if isinstance(code, str):
            return code
    return ""


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__


_UNIQUE = (
    re.compile(r"Key \((?P<field>[^)]+)\)=\((?P<value>.*?)\) already exists"),
    re.compile(r"UNIQUE constraint failed: \w+\.(?P<field>\w+)"),
)


def integrity_error(
    exc: IntegrityError, entity_cls: type[Entity] | None
) -> ValidationFailed | ConcurrencyError:
    """A uniqueness violation names its field (422); on the primary key it means another
    writer inserted that record first (a conflict, like any other lost race)."""
    orig = exc.orig
    cause = getattr(orig, "__cause__", None)
    text = " ".join(str(part) for part in (orig, getattr(cause, "detail", None) or "", exc) if part)
    for pattern in _UNIQUE:
        found = pattern.search(text)
        if found:
            field = found.group("field")
            if entity_cls is not None and field == entity_cls.options().primary_key:
                return ConcurrencyError(f"{entity_cls.__name__} {field} is taken by another record")
            return ValidationFailed({field: "This value is already taken"}, "Not saved")
    return ValidationFailed({"__root__": first_line(exc)}, "Not saved: the database refused it")


def check_whole_numbers(values: dict[str, Any], ranges: dict[str, tuple[int, int]]) -> None:
    """Refuse a whole number its column cannot hold before the driver sees it (SQLite's
    raises ``OverflowError``, PostgreSQL's quotes the value in its error)."""
    errors = {
        name: f"must be between {low} and {high}"
        for name, (low, high) in ranges.items()
        if isinstance(values.get(name), int) and not low <= values[name] <= high
    }
    if errors:
        raise ValidationFailed(errors, "Not saved")


def statement_error(exc: DBAPIError, entity_cls: type[Entity] | None = None) -> StarModelError:
    """What a failed statement means to the caller, in words that quote neither the statement
    nor its values (the driver's text is logged instead): a lost race is a conflict (re-run), a
    refused value 422, a missing table or column, or a database that went away, 503; anything
    else is a failure of the query (500), not the database being down."""
    text = first_line(exc)
    state = sqlstate(exc)
    lowered = text.lower()
    if isinstance(exc, IntegrityError):
        return integrity_error(exc, entity_cls)
    if state in ("40001", "40P01"):  # serialization failure, deadlock: re-run
        return ConcurrencyError(f"the database asked to retry ({text})")
    if isinstance(exc, DataError) or state.startswith("22"):  # data exception
        log.info("the database refused a value: %s", text)
        return ValidationFailed({"__root__": "a value the database cannot store"}, "Not saved")
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return StoreUnavailable(f"a table is missing ({text}); run `starmodel migrate`")
    if "no such column" in lowered or ("column" in lowered and "does not exist" in lowered):
        return StoreUnavailable(f"the database schema is behind the code ({text}); run `starmodel migrate`")
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError) or state[:2] in (
        "08",  # connection exception
        "53",  # insufficient resources
        "57",  # operator intervention (shutdown, cancelled)
    ):
        log.warning("the database is unavailable: %s", text)
        return StoreUnavailable("the database is unavailable")
    log.error("a statement failed in the database: %s", text)
    return StarModelError("the database could not run a query; nothing was changed")
