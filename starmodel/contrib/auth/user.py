"""The ``User`` entity: a person who can sign in, kept in the SQL table ``users``."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import field_validator
from sqlalchemy import DateTime
from sqlmodel import Field

from starmodel.adapters.driven.stores.sql_entity import Entity
from starmodel.contrib.auth.policies import staff
from starmodel.core.entity import ServerOnly

__all__ = ["MAX_EMAIL", "MAX_NAME", "User", "email_problem", "normalize_email"]

MAX_EMAIL = 254  # the longest address SMTP carries (RFC 5321)
MAX_NAME = 200


def normalize_email(email: str) -> str:
    """How an address is stored and looked up: trimmed and lower-cased."""
    return email.strip().lower()


def email_problem(email: str) -> str | None:
    """Why ``email`` (normalized) is not a usable address, or ``None``.

    A deliberately plain check (one ``@``, a dotted domain, no spaces or control characters):
    whether an address really receives mail only sending to it can tell.
    """
    if not email:
        return "Enter your email address"
    if len(email) > MAX_EMAIL:
        return f"An email address has at most {MAX_EMAIL} characters"
    local, at, domain = email.rpartition("@")
    labels = domain.split(".")
    if (
        not at
        or not local
        or "@" in local
        or len(local) > 64
        or len(labels) < 2
        or any(not label for label in labels)
        or any(ch.isspace() or not ch.isprintable() for ch in email)
    ):
        return "Enter a valid email address, like name@example.com"
    return None


def _now() -> datetime:
    return datetime.now(UTC)


class User(Entity, table=True):
    """A user account. ``password_hash`` (argon2id) and ``is_staff`` are server-only: they
    never reach the browser and no request can set them.

    Only staff may act on users through the app's generic screens (policy ``{"*": staff}``),
    and nobody creates one there (an account needs a password: registration, the CLI or
    ``Auth.create_user``); the auth plugin itself reads and writes them from the server.
    """

    model_config = {  # type: ignore[typeddict-unknown-key]
        "namespace": "sm_user",
        "table_name": "users",
        "policy": {"create": False, "*": staff},
    }

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=MAX_EMAIL, unique=True)
    name: str = Field(default="", max_length=MAX_NAME)
    password_hash: ServerOnly[str] = Field(default="", max_length=255, repr=False)
    is_staff: ServerOnly[bool] = False
    created_at: datetime = Field(default_factory=_now, sa_type=DateTime(timezone=True))

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        email = normalize_email(value)
        problem = email_problem(email)
        if problem:
            raise ValueError(problem)
        return email
