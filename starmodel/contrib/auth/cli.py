"""``starmodel users create | list | password | signout``: manage the accounts of an app that
uses ``Auth`` (a ``starmodel.cli`` plugin command)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:
    from starmodel.contrib.auth.plugin import Auth
    from starmodel.contrib.auth.user import User

__all__ = ["users_group"]

T = TypeVar("T")
APP_HELP = "The app (default: STARMODEL_APP, else app.py / main.py in this folder)."


@click.group("users")
def users_group() -> None:
    """User accounts of the auth plugin (starmodel.contrib.auth)."""


def _auth(app: str | None) -> Auth:
    from starmodel.cli.discovery import find_app
    from starmodel.contrib.auth.plugin import Auth

    found = find_app(app)
    auth = Auth.of(found.starmodel)
    if auth is None:
        raise click.ClickException(
            f"{found.import_string} has no auth: install it with `Auth(sm)` (from starmodel.contrib.auth)"
        )
    return auth


def _run(auth: Auth, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` once the users table is ready; StarModel errors become one line."""
    from starmodel.adapters.driven.bus.redis import RedisBus
    from starmodel.core.errors import StarModelError, ValidationFailed

    async def main() -> T:
        try:
            await auth.store.prepare()
            bus = auth.sm.services.bus
            if isinstance(bus, RedisBus):  # the app's running processes hear of the change
                await bus.wait_connected(3.0)
            return await work()
        finally:
            auth.passwords.close()
            await auth.sm.services.close()

    try:
        return asyncio.run(main())
    except ValidationFailed as exc:
        details = "; ".join(f"{name}: {text}" for name, text in exc.errors.items())
        raise click.ClickException(details) from None
    except StarModelError as exc:
        raise click.ClickException(str(exc)) from None


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise click.ClickException("no password on standard input")
        return line.rstrip("\r\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")
    return password


@users_group.command("create")
@click.argument("email")
@click.option("--name", default="", help="The user's name.")
@click.option("--staff", is_flag=True, help="Make a staff user (allowed by the `staff` policy).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--app", "app", default=None, help=APP_HELP)
def create_command(email: str, name: str, staff: bool, password_stdin: bool, app: str | None) -> None:
    """Create the account EMAIL (the password is asked twice, hidden)."""
    from starmodel.contrib.auth.passwords import password_problem

    auth = _auth(app)
    password = _read_password(password_stdin)
    problem = password_problem(password)
    if problem:
        raise click.ClickException(f"password: {problem}")
    user = _run(auth, lambda: auth.create_user(email, password, name=name, staff=staff))
    click.echo(f"created user {user.id} {user.email}{' (staff)' if user.is_staff else ''}")


async def _existing(auth: Auth, email: str) -> User:
    from starmodel.contrib.auth.user import normalize_email

    user = await auth.store.by_email(normalize_email(email))
    if user is None:
        raise click.ClickException(f"no user {email}")
    return user


def _browsers(count: int) -> str:
    return "1 browser" if count == 1 else f"{count} browsers"


@users_group.command("password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--app", "app", default=None, help=APP_HELP)
def password_command(email: str, password_stdin: bool, app: str | None) -> None:
    """Give EMAIL a new password (asked twice, hidden); every sign-in of theirs ends."""
    from starmodel.contrib.auth.passwords import password_problem

    auth = _auth(app)
    password = _read_password(password_stdin)
    problem = password_problem(password)
    if problem:
        raise click.ClickException(f"password: {problem}")

    async def change() -> int:
        return await auth.set_password(await _existing(auth, email), password)

    ended = _run(auth, change)
    click.echo(f"password of {email.strip().lower()} changed; signed out in {_browsers(ended)}")


@users_group.command("signout")
@click.argument("email")
@click.option("--app", "app", default=None, help=APP_HELP)
def signout_command(email: str, app: str | None) -> None:
    """Sign EMAIL out everywhere: every sign-in of theirs ends, in every browser."""
    auth = _auth(app)

    async def sign_out() -> int:
        return await auth.sign_out_everywhere(await _existing(auth, email))

    ended = _run(auth, sign_out)
    click.echo(f"{email.strip().lower()} signed out in {_browsers(ended)}")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--app", "app", default=None, help=APP_HELP)
def list_command(as_json: bool, app: str | None) -> None:
    """List the accounts (id, email, name, staff, created)."""
    auth = _auth(app)

    async def every_user() -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        offset = 0
        while page := await auth.store.page(offset=offset, limit=500):
            rows += [
                {"id": u.id, "email": u.email, "name": u.name, "staff": u.is_staff,
                 "created_at": u.created_at.isoformat(timespec="seconds")}
                for u in page
            ]
            offset += len(page)
        return rows

    rows = _run(auth, every_user)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no users yet: `starmodel users create EMAIL` makes one")
        return
    table = [("ID", "EMAIL", "NAME", "STAFF", "CREATED")] + [
        (str(r["id"]), str(r["email"]), str(r["name"]), "yes" if r["staff"] else "", str(r["created_at"]))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        click.echo("  ".join([*cells, row[4]]))
