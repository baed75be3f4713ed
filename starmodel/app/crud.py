"""Generated CRUD as an application service: list, read, create, update and delete records of
any entity, through the same unit of work, validation, policy and bus as events.

The UI and JSON adapters call this; nothing here knows about HTTP or HTML.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import ValidationError

from starmodel.app.dispatcher import Dispatcher
from starmodel.app.uow import UnitOfWork
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import (
    ConcurrencyError,
    EntityNotFound,
    PermissionDenied,
    ValidationFailed,
)
from starmodel.core.fields import editable_fields, searchable_fields, sortable_fields
from starmodel.core.files import CLIENT_INPUT
from starmodel.core.queries import ListQuery, RecordFinder, ResultPage

__all__ = ["MAX_PAGE", "MAX_PER_PAGE", "CrudService"]

E = TypeVar("E", bound=Entity)
FinderFor = Callable[[type[Entity]], RecordFinder]
MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000_000
"""The last page a list query may ask for (its offset stays far inside a 64-bit number)."""


class CrudService:
    """List / get / create / update / delete for screens and APIs.

    Every call checks the entity's policy (``read``, ``create``, ``update``, ``delete``) for
    the caller, validates the whole record, and commits through a fresh unit of work, so the
    change is published on the bus (live lists and other processes see it) like an event's.
    """

    def __init__(self, dispatcher: Dispatcher, finder_for: FinderFor) -> None:
        self.dispatcher = dispatcher
        self.finder_for = finder_for

    # --- reading -----------------------------------------------------------------------

    def check_query(self, entity_cls: type[Entity], query: ListQuery) -> ListQuery:
        """Refuse a query naming unknown fields or impossible pages (``ValidationFailed``)."""
        errors: dict[str, str] = {}
        if query.sort is not None and query.sort not in sortable_fields(entity_cls):
            choices = ", ".join(sortable_fields(entity_cls))
            errors["sort"] = f"cannot sort by {query.sort!r}; choose one of {choices}"
        if not 1 <= query.page <= MAX_PAGE:
            errors["page"] = f"must be between 1 and {MAX_PAGE}"
        if not 1 <= query.per_page <= MAX_PER_PAGE:
            errors["per_page"] = f"must be between 1 and {MAX_PER_PAGE}"
        if len(query.search) > 200:
            errors["q"] = "search text is too long (200 characters at most)"
        if errors:
            raise ValidationFailed(errors, "Invalid list query")
        if query.search and not query.search_fields:
            return ListQuery(
                query.search,
                tuple(searchable_fields(entity_cls)),
                query.sort,
                query.descending,
                query.page,
                query.per_page,
            )
        return query

    async def page(self, entity_cls: type[E], query: ListQuery, ctx: CallContext) -> ResultPage[E]:
        self._require(entity_cls, "read", ctx, None)
        query = self.check_query(entity_cls, query)
        owner = ctx.session_id if entity_cls.options().private else None
        return await self.finder_for(entity_cls).find(entity_cls, query, owner=owner)

    async def get(self, entity_cls: type[E], key: str, ctx: CallContext) -> E:
        """The record (or session/global instance) with this key; 404 if there is none."""
        async with self.dispatcher.uow_factory(entity_cls) as uow:
            uow.owner = ctx.session_id
            record = await self._find(uow, entity_cls, key)
        self._require(entity_cls, "read", ctx, record)
        return record

    # --- writing -----------------------------------------------------------------------

    async def create(self, entity_cls: type[E], values: Mapping[str, Any], ctx: CallContext) -> E:
        self._require(entity_cls, "create", ctx, None)
        self._refuse_unknown(entity_cls, values, creating=True)
        try:
            record = entity_cls.model_validate(dict(values), context=CLIENT_INPUT)
        except ValidationError as exc:
            raise ValidationFailed.from_pydantic(exc, f"{entity_cls.__name__} not saved") from None
        self._require(entity_cls, "create", ctx, record)
        async with self.dispatcher.uow_factory(entity_cls) as uow:
            uow.owner = ctx.session_id
            uow.add(record)
            await uow.commit(ctx)
        return record

    async def update(
        self,
        entity_cls: type[E],
        key: str,
        values: Mapping[str, Any],
        ctx: CallContext,
        *,
        version: int | None = None,
    ) -> E:
        """Change some fields of a record. With ``version`` (the one the form was drawn
        from), a record changed meanwhile by somebody else is refused (409), never overwritten."""
        self._refuse_unknown(entity_cls, values, creating=False)
        retries = 1 if version is not None else self.dispatcher.retries
        for attempt in range(retries):
            try:
                return await self._update_once(entity_cls, key, values, ctx, version)
            except ConcurrencyError:
                if attempt == retries - 1:
                    raise
        raise AssertionError("unreachable")

    async def _update_once(
        self, entity_cls: type[E], key: str, values: Mapping[str, Any], ctx: CallContext, version: int | None
    ) -> E:
        async with self._record(entity_cls, key, ctx, "update", version) as (uow, record):
            current = {name: getattr(record, name) for name in entity_cls.model_fields}
            try:
                checked = entity_cls.model_validate({**current, **values}, context=CLIENT_INPUT)
            except ValidationError as exc:
                raise ValidationFailed.from_pydantic(exc, f"{entity_cls.__name__} not saved") from None
            for name in values:
                if getattr(record, name) != getattr(checked, name):
                    setattr(record, name, getattr(checked, name))
            await uow.commit(ctx)
        return record

    async def delete(
        self, entity_cls: type[Entity], key: str, ctx: CallContext, *, version: int | None = None
    ) -> None:
        async with self._record(entity_cls, key, ctx, "delete", version) as (uow, record):
            uow.remove(record)
            await uow.commit(ctx)

    # --- helpers -----------------------------------------------------------------------

    @asynccontextmanager
    async def _record(
        self, entity_cls: type[E], key: str, ctx: CallContext, action: str, version: int | None
    ) -> AsyncIterator[tuple[UnitOfWork, E]]:
        """The record to change, in its own unit of work and turn, once the caller may
        ``action`` it and it is still at ``version`` (when given)."""
        async with self.dispatcher.turn(entity_cls, key), self.dispatcher.uow_factory(entity_cls) as uow:
            uow.owner = ctx.session_id
            record = await self._find(uow, entity_cls, key)
            self._require(entity_cls, action, ctx, record)
            if version is not None and record._sm_version != version:
                raise ConcurrencyError(
                    f"This {entity_cls.__name__} was changed by someone else since you opened it; "
                    "reload to see their version (nothing was changed)"
                )
            yield uow, record

    @staticmethod
    async def _find(uow: UnitOfWork, entity_cls: type[E], key: str) -> E:
        if entity_cls.options().scope == "id":
            record = await uow.get(entity_cls, key)
            if record is None:
                raise EntityNotFound(f"{entity_cls.__name__} {key} does not exist")
            return record
        return await uow.load(entity_cls, key)

    @staticmethod
    def _require(entity_cls: type[Entity], action: str, ctx: CallContext, record: Entity | None) -> None:
        ctx.entity = record
        if not entity_cls.permits(action, ctx):
            raise PermissionDenied(f"You may not {action} {entity_cls.__name__} records")

    @staticmethod
    def _refuse_unknown(entity_cls: type[Entity], values: Mapping[str, Any], *, creating: bool) -> None:
        allowed = set(editable_fields(entity_cls, creating=creating))
        unknown = [name for name in values if name not in allowed]
        if unknown:
            raise ValidationFailed(
                {name: "This field cannot be set here" for name in unknown},
                f"{entity_cls.__name__} not saved",
            )
