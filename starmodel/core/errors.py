"""The exception hierarchy: one root, subclasses that say what went wrong and what to do."""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyRunning",
    "ClientStateInvalid",
    "CommitIncomplete",
    "ConcurrencyError",
    "ConfigurationError",
    "CorruptData",
    "EntityNotFound",
    "EventNotFound",
    "PermissionDenied",
    "RateLimited",
    "StarModelError",
    "StoreUnavailable",
    "ValidationFailed",
]


class StarModelError(Exception):
    """Root of every error StarModel raises on purpose.

    Attributes:
        status_code: the HTTP status of the answer to an event that raises it.
    """

    status_code: int = 500
    retry_after: float | None = None  # seconds after which trying again makes sense, if known


class ConfigurationError(StarModelError):
    """The app or an entity is declared in a way StarModel cannot run."""


class EntityNotFound(StarModelError):
    """No entity (or no record of it) answers to that name or key."""

    status_code = 404


class EventNotFound(StarModelError):
    """The entity has no method marked ``@event`` with that name."""

    status_code = 404


class PermissionDenied(StarModelError):
    """The caller may not run this event; nothing was changed."""

    status_code = 403


class RateLimited(StarModelError):
    """The caller ran this event more often than its ``rate`` allows; nothing was changed.
    ``retry_after``: seconds until the caller's window ends."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConcurrencyError(StarModelError):
    """Another writer changed the entity first; reload and try again."""

    status_code = 409


class AlreadyRunning(StarModelError):
    """An exclusive background event runs on this entity already (in some server process);
    nothing was started. Try again once it ends (``$<namespace>._running.<event>`` says when)."""

    status_code = 409


class StoreUnavailable(StarModelError):
    """The entity's store cannot be reached right now; nothing was changed.

    Args:
        message: what cannot be reached, and why.
        retry_after: seconds after which trying again makes sense, when known (sent to HTTP
            clients as ``Retry-After``).
    """

    status_code = 503

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CorruptData(StoreUnavailable):
    """A stored record cannot be read back as its entity (foreign or damaged data under a
    StarModel key). The message names the key; nothing is changed until it is fixed or
    deleted."""


class CommitIncomplete(StoreUnavailable):
    """A store failed to commit after another store had already made its part of the event
    durable: the change may be partly saved. The event is not run again (that could apply
    the saved part twice); the details are logged."""


class ValidationFailed(StarModelError):
    """Input or resulting state did not validate; carries one message per field.

    Args:
        errors: field name (dotted for nested values) -> human readable message.
        message: a one-line summary.
    """

    status_code = 422

    def __init__(self, errors: dict[str, str], message: str = "Invalid input") -> None:
        super().__init__(message)
        self.errors = errors
        self.message = message

    @classmethod
    def from_pydantic(cls, error: Any, message: str = "Invalid input") -> ValidationFailed:
        """Build from a ``pydantic.ValidationError`` (duck-typed: anything with ``errors()``)."""
        fields: dict[str, str] = {}
        for item in error.errors(include_url=False):
            loc = ".".join(str(part) for part in item.get("loc", ())) or "__root__"
            fields.setdefault(loc, item.get("msg", "invalid value"))
        return cls(fields, message)

    def __str__(self) -> str:
        details = "; ".join(f"{name}: {msg}" for name, msg in self.errors.items())
        return f"{self.message}: {details}" if details else self.message


class ClientStateInvalid(ValidationFailed):
    """State a browser keeps for an entity (``CLIENT_SESSION`` / ``CLIENT_LOCAL``) does not fit
    the entity's schema: tampered with, or left by an older version of the app. The page is
    told to reset it to ``reset`` (the entity's defaults); nothing ran."""

    def __init__(self, namespace: str, errors: dict[str, str], reset: dict[str, Any]) -> None:
        super().__init__(errors, "Saved data in this browser was invalid and has been reset")
        self.namespace = namespace
        self.reset = reset
