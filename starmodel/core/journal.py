"""The event journal: who changed what, when, with which event (an entity opts in with
``model_config["journal"]``), and the ``Journal`` port that keeps it.

An entry is written for every committed change of a journaled entity: in the same transaction
as the change for stores that can take it (SQL), else by the unit of work once the stores have
committed (memory, Redis, the browser's stores). A refused or rolled-back event writes none.
"""

from __future__ import annotations

import functools
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from starmodel.core.clock import REAL_CLOCK, current_clock
from starmodel.core.errors import ConfigurationError, StarModelError

if TYPE_CHECKING:
    from starmodel.core.context import CallContext
    from starmodel.core.entity import Entity

__all__ = [
    "HIDDEN",
    "Doing",
    "Journal",
    "JournalEntry",
    "JournalSettings",
    "UndoRefused",
    "actor_of",
    "journal_key",
    "undone_ids",
]

HIDDEN = "(hidden)"
"""What the journal keeps of a server-only field's values: that it changed, not what to."""
_MAX_PARAM = 1000  # characters of JSON kept per parameter value


class UndoRefused(StarModelError):
    """The journal entry cannot be undone (a later event changed the same fields, it was undone
    already, ...); the message says why."""

    status_code = 409


@dataclass(frozen=True)
class JournalSettings:
    """``model_config["journal"]``: ``True``, or ``{"keep": 1000, "max_age": 30 * 86400}``.

    Attributes:
        keep: the most entries kept per record (older ones are pruned at commit); ``None``: all.
        max_age: seconds an entry is kept; ``None``: no limit.
    """

    keep: int | None = None
    max_age: float | None = None

    @classmethod
    def parse(cls, raw: Any, owner: str) -> JournalSettings | None:
        if raw is None or raw is False:
            return None
        if raw is True:
            return cls()
        if not isinstance(raw, dict) or set(raw) - {"keep", "max_age"}:
            raise ConfigurationError(
                f"{owner}: journal must be True or a dict with 'keep' (entries per record) "
                "and/or 'max_age' (seconds)"
            )
        keep, max_age = raw.get("keep"), raw.get("max_age")
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise ConfigurationError(f"{owner}: journal keep must be a whole number of entries, at least 1")
        wrong_age = isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age <= 0
        if max_age is not None and wrong_age:
            raise ConfigurationError(f"{owner}: journal max_age must be a positive number of seconds")
        return cls(keep=keep, max_age=float(max_age) if max_age is not None else None)

    def describe(self) -> str:
        parts = [f"keep {self.keep} per record" if self.keep else "keep all"]
        if self.max_age:
            parts.append(f"for {self.max_age:g}s")
        return "on (" + ", ".join(parts) + ")"


@dataclass(frozen=True)
class Doing:
    """What a unit of work is running, for the journal: the event and its parameters (an undo
    also names the entry it reverses)."""

    event: str
    params: dict[str, Any] = field(default_factory=dict)
    entity: str = ""  # the namespace of the entity the event belongs to
    undoes: str | None = None


@dataclass(frozen=True)
class JournalEntry:
    """One committed change of one record.

    Attributes:
        id: the entry's id (given by the journal that keeps it; ``""`` before).
        entity: the entity's namespace.
        key: the record's key (a session entity's is a digest of the session id).
        version: the record's version after the change (orders one record's entries).
        event: the event that made the change (``"Other.event"`` when it ran on another entity;
            ``"(update)"`` and the like for generated forms and server code).
        params: the event's parameters, JSON-ready (long values shortened).
        actor: who called it: the signed-in user, else ``session <digest>``.
        at: when it was committed (UTC).
        changes: ``{field: [before, after]}`` (JSON-ready; server-only fields as ``HIDDEN``).
        kind: ``"change"``, ``"create"`` or ``"delete"``.
        undoes: the id of the entry this one reverses, if it is an undo.
    """

    entity: str
    key: str
    version: int
    event: str
    actor: str
    at: datetime
    changes: dict[str, list[Any]]
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "change"
    undoes: str | None = None
    id: str = ""

    def with_id(self, entry_id: str) -> JournalEntry:
        return replace(self, id=entry_id)

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data (``at`` in ISO 8601)."""
        return {
            "id": self.id,
            "entity": self.entity,
            "key": self.key,
            "version": self.version,
            "event": self.event,
            "params": self.params,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "changes": self.changes,
            "kind": self.kind,
            "undoes": self.undoes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalEntry:
        at = datetime.fromisoformat(data["at"])
        return cls(
            id=str(data.get("id") or ""),
            entity=data["entity"],
            key=data["key"],
            version=int(data["version"]),
            event=data["event"],
            params=dict(data.get("params") or {}),
            actor=data.get("actor") or "",
            at=at if at.tzinfo else at.replace(tzinfo=UTC),
            changes={name: list(pair) for name, pair in (data.get("changes") or {}).items()},
            kind=data.get("kind") or "change",
            undoes=data.get("undoes") or None,
        )

    @classmethod
    def of(
        cls,
        entity: Entity,
        ctx: CallContext,
        doing: Doing | None,
        before: dict[str, Any],
        after: dict[str, Any],
        hidden_changed: Sequence[str] = (),
        *,
        kind: str = "change",
    ) -> JournalEntry:
        """The entry of one saved change: ``before`` and ``after`` are the entity's public
        states (JSON-ready); ``hidden_changed`` the server-only fields that changed."""
        entity_cls = type(entity)
        options = entity_cls.options()
        names = [n for n in entity_cls.model_fields if n not in entity_cls.__starmodel_server_only__]
        changes: dict[str, list[Any]] = {}
        for name in names:
            old, new = before.get(name), after.get(name)
            if kind != "change" or old != new:
                changes[name] = [old, new]
        for name in hidden_changed:
            changes[name] = [HIDDEN, HIDDEN]
        if doing is None:
            event = {"create": "(create)", "delete": "(delete)"}.get(kind, "(update)")
        elif doing.entity and doing.entity != options.namespace:
            event = f"{doing.entity}.{doing.event}"
        else:
            event = doing.event
        version = entity._sm_version + (1 if kind == "delete" else 0)
        now = (current_clock.get() or REAL_CLOCK).now()
        return cls(
            entity=options.namespace,
            key=journal_key(entity_cls, entity._sm_key or entity.record_key() or ""),
            version=version,
            event=event,
            actor=actor_of(ctx),
            at=datetime.fromtimestamp(now, UTC),
            changes=changes,
            params=_params(doing.params) if doing is not None else {},
            kind=kind,
            undoes=doing.undoes if doing is not None else None,
        )


def journal_key(entity_cls: type[Entity], key: str) -> str:
    """The key a record's entries are kept under: its own, except for session entities, whose
    key (the session id) is kept as a digest, so the journal reveals no session id."""
    if entity_cls.options().scope == "session":
        return "s-" + _digest(key)
    return key


def actor_of(ctx: CallContext) -> str:
    """Who ``ctx`` is, for the journal: the signed-in user's email, name or id, else the
    session (as a short digest)."""
    user = ctx.user
    if user is not None:
        for attribute in ("email", "username", "name", "id"):
            value = getattr(user, attribute, None)
            if value not in (None, ""):
                return str(value)
        return str(user)
    if ctx.session_id == "server":  # server code (sm.call, jobs, sm.journal.undo without a caller)
        return "server"
    return f"session {_digest(ctx.session_id)[:8]}"


def undone_ids(entries: Sequence[JournalEntry]) -> dict[str, str]:
    """``{undone entry id: id of the undo}`` among ``entries``."""
    return {entry.undoes: entry.id for entry in entries if entry.undoes}


@functools.lru_cache(maxsize=4096)
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _params(params: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, value in params.items():
        small = isinstance(value, str) and len(value) < 200
        if value is None or small or isinstance(value, bool | int | float):
            kept[name] = value  # JSON as it is (the hot case: small scalars)
            continue
        ready = to_jsonable_python(value, fallback=repr)
        text = json.dumps(ready, default=str)
        kept[name] = ready if len(text) <= _MAX_PARAM else f"({len(text)} characters)"
    return kept


class Journal(ABC):
    """Keeps journal entries and answers what a history screen asks.

    ``append`` adds entries that the stores have committed already (stores that write entries
    in their own transaction, such as SQL, do so through ``EntityRepository.record``). A
    record's entries are ordered by ``version``; ``settings`` (per entity) prune old ones.
    """

    @abstractmethod
    async def append(self, entries: Sequence[JournalEntry], settings: dict[str, JournalSettings]) -> None:
        """Keep ``entries``, then prune their records' old entries by ``settings[entity]``."""

    @abstractmethod
    async def history(
        self, entity: str, key: str | None = None, *, limit: int = 50, newer_than: int | None = None
    ) -> list[JournalEntry]:
        """Entries newest first: of one record (``key``; with ``newer_than``, only those with a
        higher version), or of every record of ``entity`` (by time)."""

    @abstractmethod
    async def find(self, entity: str, entry_id: str) -> JournalEntry | None:
        """The entry ``entry_id`` of ``entity``, or ``None``."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
