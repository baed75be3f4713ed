"""Where users are read and written: plain ``SELECT``s on their table for look-ups (by id on
every request, by email at sign-in), a unit of work for writes (versioned, published)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from starmodel.adapters.persistence.sql import VERSION_COLUMN, SqlDatabase
from starmodel.contrib.auth.user import User
from starmodel.core.context import CallContext
from starmodel.core.errors import ConcurrencyError, StoreUnavailable

if TYPE_CHECKING:
    from starmodel.bootstrap import StarModel

__all__ = ["UserStore"]

_INT32 = 2**31  # the id column is an INTEGER on every database StarModel supports


class UserStore:
    """The users of one app, in its SQL database."""

    def __init__(self, sm: StarModel) -> None:
        self.sm = sm

    @property
    def database(self) -> SqlDatabase:
        return self.sm.services.database

    async def by_id(self, user_id: int) -> User | None:
        if not -_INT32 <= user_id < _INT32:
            return None
        found = await self._select(lambda table: table.c.id == user_id)
        return found[0] if found else None

    async def by_email(self, email: str) -> User | None:
        """The user with this (normalized) email."""
        found = await self._select(lambda table: table.c.email == email)
        return found[0] if found else None

    async def page(self, *, offset: int = 0, limit: int = 100) -> list[User]:
        """Users in id order."""
        return await self._select(None, offset=offset, limit=limit)

    async def count(self) -> int:
        table = self.database.table(User)
        rows = await self._execute(select(func.count().label("users")).select_from(table))
        return int(rows[0]["users"])

    async def add(self, user: User) -> User:
        """Insert ``user`` (its id is set); an email already taken is ``ValidationFailed``."""
        async with self.sm.dispatcher.uow_factory(User) as uow:
            uow.add(user)
            await uow.commit(_SERVER)
        return user

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """Replace a user's hash (a rehash at sign-in: losing a race to another is fine)."""
        try:
            async with self.sm.dispatcher.uow_factory(User) as uow:
                user = await uow.get(User, str(user_id))
                if user is not None:
                    user.password_hash = password_hash
                    await uow.commit(_SERVER)
        except ConcurrencyError:
            pass  # another sign-in of this user rehashed it meanwhile

    async def prepare(self) -> None:
        """Make sure the table exists, as the app's start does: created when the app has no
        migrations; with migrations, ``StoreUnavailable`` until they create it."""
        try:
            if (Path(self.sm.settings.migrations_dir) / "env.py").is_file():
                if await self.database.missing_tables([User]):
                    raise StoreUnavailable(
                        f"table {self.database.table(User).name} does not exist yet: run `starmodel migrate`"
                    )
                return
            await self.database.create_tables([User])
        except (OSError, SQLAlchemyError) as exc:
            raise _unavailable(exc) from None

    async def _select(self, where: Any, *, offset: int = 0, limit: int | None = None) -> list[User]:
        table = self.database.table(User)
        query = select(table).order_by(table.c.id).offset(offset)
        if where is not None:
            query = query.where(where(table))
        if limit is not None:
            query = query.limit(limit)
        return [_user(row) for row in await self._execute(query)]

    async def _execute(self, query: Any) -> list[Any]:
        """The rows of a query (as mappings), on a connection of its own."""
        try:
            async with await self.database.connect() as conn:
                return list((await conn.execute(query)).mappings().all())
        except (OSError, DBAPIError) as exc:
            raise _unavailable(exc) from None


_SERVER = CallContext(session_id="server")


def _user(row: Any) -> User:
    user = User.model_validate({name: row[name] for name in User.model_fields})
    user._sm_version = int(row[VERSION_COLUMN])
    user._sm_key = str(user.id)
    return user


def _unavailable(exc: BaseException) -> StoreUnavailable:
    text = str(getattr(exc, "orig", None) or exc).strip()
    line = text.splitlines()[0][:200] if text else type(exc).__name__
    lowered = line.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return StoreUnavailable(f"the users table is missing ({line}); run `starmodel migrate`")
    return StoreUnavailable(f"the database cannot be reached ({line})")
