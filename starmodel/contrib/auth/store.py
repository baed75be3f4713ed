"""Where users and their sign-ins are read and written: plain ``SELECT``s for look-ups (a
request's sign-in joined with its user, by email at sign-in), a unit of work for user writes
(versioned, published), single statements for sign-ins."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from starmodel.adapters.driven.stores.sql import VERSION_COLUMN, SqlDatabase
from starmodel.contrib.auth.signin import SignIn
from starmodel.contrib.auth.user import User
from starmodel.core.context import CallContext
from starmodel.core.errors import ConcurrencyError, StoreUnavailable

if TYPE_CHECKING:
    from starmodel.bootstrap import StarModel

__all__ = ["SignInStore", "SignedIn", "UserStore"]

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
        with contextlib.suppress(ConcurrencyError):  # another sign-in rehashed it meanwhile
            await self.replace_password_hash(user_id, password_hash)

    async def replace_password_hash(self, user_id: int, password_hash: str) -> bool:
        """Replace a user's hash; whether the user exists (``ConcurrencyError`` if the user
        was changed meanwhile)."""
        async with self.sm.dispatcher.uow_factory(User) as uow:
            user = await uow.get(User, str(user_id))
            if user is None:
                return False
            user.password_hash = password_hash
            await uow.commit(_SERVER)
        return True

    async def prepare(self) -> None:
        """Make sure the table exists, as the app's start does: created when the app has no
        migrations; with migrations, ``StoreUnavailable`` until they create it."""
        try:
            if (Path(self.sm.settings.migrations_dir) / "env.py").is_file():
                missing = await self.database.missing_tables([User, SignIn])
                if missing:
                    raise StoreUnavailable(
                        f"table {', '.join(missing)} does not exist yet: run `starmodel migrate`"
                    )
                return
            await self.database.create_tables([User, SignIn])
        except (OSError, SQLAlchemyError) as exc:
            raise unavailable(exc) from None

    async def _select(self, where: Any, *, offset: int = 0, limit: int | None = None) -> list[User]:
        table = self.database.table(User)
        query = select(table).order_by(table.c.id).offset(offset)
        if where is not None:
            query = query.where(where(table))
        if limit is not None:
            query = query.limit(limit)
        return [user_from_row(row) for row in await self._execute(query)]

    async def _execute(self, query: Any) -> list[Any]:
        """The rows of a query (as mappings), on a connection of its own."""
        try:
            async with await self.database.connect() as conn:
                return list((await conn.execute(query)).mappings().all())
        except (OSError, DBAPIError) as exc:
            raise unavailable(exc) from None



@dataclass(frozen=True)
class SignedIn:
    """A sign-in as a request finds it: the user, and what the sign-in row says."""

    user: User
    user_id: int
    expires_at: datetime
    password_check: str

    def expired(self, now: datetime) -> bool:
        expires = self.expires_at if self.expires_at.tzinfo else self.expires_at.replace(tzinfo=UTC)
        return expires <= now


class SignInStore:
    """The sign-ins of one app, beside its users. A request's look-up is one primary-key read
    joined with the user's row (what a request that needs the user paid before sign-ins were
    kept, no more); writes are single statements in one transaction."""

    def __init__(self, sm: StarModel) -> None:
        self.sm = sm
        self._lookup: tuple[SqlDatabase, Any] | None = None

    @property
    def database(self) -> SqlDatabase:
        return self.sm.services.database

    async def find(self, key: str) -> SignedIn | None:
        """The sign-in with this key and its user (``None``: no such sign-in, or no user)."""
        database = self.database
        if self._lookup is None or self._lookup[0] is not database:
            self._lookup = (database, _lookup_statement(database))
        try:
            async with await database.connect() as conn:  # bounded by the store timeout
                row = (await conn.execute(self._lookup[1], {"key": key})).mappings().first()
        except (OSError, DBAPIError) as exc:
            raise unavailable(exc) from None
        if row is None:
            return None
        return SignedIn(user_from_row(row), row["signin_user"], row["signin_expires"], row["signin_check"])

    async def add(self, key: str, user_id: int, expires_at: datetime, password_check: str) -> None:
        """Record a sign-in (and forget every sign-in that has expired, whoever's it was)."""
        table = self.database.table(SignIn)
        now = datetime.now(UTC)
        row = {"id": key, "user_id": user_id, "created_at": now, "expires_at": expires_at,
               "password_check": password_check, VERSION_COLUMN: 1}
        await self._write(table.delete().where(table.c.expires_at <= now), table.insert().values(**row))

    async def end(self, key: str) -> bool:
        """End one sign-in; whether there was one."""
        table = self.database.table(SignIn)
        return bool(await self._write(table.delete().where(table.c.id == key)))

    async def end_all(self, user_id: int) -> list[str]:
        """End every sign-in of a user; their keys."""
        table = self.database.table(SignIn)
        keys: list[str] = await self._write(
            table.delete().where(table.c.user_id == user_id).returning(table.c.id)
        )
        return keys

    async def recheck(self, user_id: int, old: str, new: str) -> None:
        """The user's password hash was made again from the same password: the sign-ins made
        with the old hash stay signed in."""
        table = self.database.table(SignIn)
        await self._write(
            table.update()
            .where(table.c.user_id == user_id, table.c.password_check == old)
            .values(password_check=new)
        )

    async def _write(self, *statements: Any) -> Any:
        """Run ``statements`` in one transaction; the last one's returned values (or its row
        count)."""
        database = self.database
        result: Any = None
        try:
            async with database.write_lock or contextlib.nullcontext(), await database.connect() as conn:
                transaction = await conn.begin()
                for statement in statements:
                    found = await conn.execute(statement)
                    result = [row[0] for row in found] if found.returns_rows else found.rowcount
                await transaction.commit()
        except (OSError, DBAPIError) as exc:
            raise unavailable(exc) from None
        return result


def _lookup_statement(database: SqlDatabase) -> Any:
    users, sign_ins = database.table(User), database.table(SignIn)
    return (
        select(
            users,
            sign_ins.c.user_id.label("signin_user"),
            sign_ins.c.expires_at.label("signin_expires"),
            sign_ins.c.password_check.label("signin_check"),
        )
        .select_from(sign_ins.join(users, users.c.id == sign_ins.c.user_id))
        .where(sign_ins.c.id == bindparam("key"))
    )

_SERVER = CallContext(session_id="server")


def user_from_row(row: Any) -> User:
    user = User.model_validate({name: row[name] for name in User.model_fields})
    user._sm_version = int(row[VERSION_COLUMN])
    user._sm_key = str(user.id)
    return user


def unavailable(exc: BaseException) -> StoreUnavailable:
    """What a database error means for the auth plugin, in one line."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    line = text.splitlines()[0][:200] if text else type(exc).__name__
    lowered = line.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return StoreUnavailable(f"a table of the accounts is missing ({line}); run `starmodel migrate`")
    return StoreUnavailable(f"the database cannot be reached ({line})")
