"""The ``SignIn`` entity: one signed-in browser session, kept on the server (table
``sign_ins``), so that ending it ends every copy of its cookie."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field

from starmodel.adapters.driven.stores.sql_entity import Entity
from starmodel.contrib.auth.policies import staff
from starmodel.core.entity import ServerOnly
from starmodel.core.messages import DomainEvent

__all__ = ["SignIn", "SignInsEnded", "sign_in_key"]


def sign_in_key(session_id: str) -> str:
    """The row id of a session's sign-in: a SHA-256 digest of its session id, so whoever
    reads the table learns no session id."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class SignIn(Entity, table=True):
    """A signed-in browser session: its cookie is signed in while this row exists, has not
    expired and matches the user's password. Staff see them in the admin and may end one by
    deleting it; nobody creates or edits one there (signing in does).

    ``password_check`` is a keyed digest of the user's password hash at sign-in: a password
    changed by any path ends the sign-ins made with the old one.
    """

    model_config = {  # type: ignore[typeddict-unknown-key]
        "namespace": "sm_sign_in",
        "table_name": "sign_ins",
        "policy": {"read": staff, "delete": staff, "*": False},
    }

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(index=True)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    password_check: ServerOnly[str] = Field(default="", max_length=64, repr=False)


@dataclass(frozen=True)
class SignInsEnded(DomainEvent):
    """Sign-ins ended (named by their keys): every server process closes the live streams of
    their sessions, which reconnect as whoever they are now."""

    keys: list[str] = field(default_factory=list)
