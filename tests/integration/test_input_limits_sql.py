"""Numbers and values the database cannot take, on SQLite and PostgreSQL: refused with a 4xx
before (or when) they reach it, never reported as the database being down, and never with the
statement or its values in the answer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from integration_support import DATASTAR
from sqlalchemy import BigInteger
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlmodel import Field

from starmodel import Entity, StarModel, event
from starmodel.adapters.driven.stores.queries import SqlRecordFinder
from starmodel.adapters.driven.stores.sql import statement_error
from starmodel.core.errors import ConcurrencyError, StarModelError, StoreUnavailable, ValidationFailed
from starmodel.core.queries import ListQuery
from tests.http.sm_http import asgi_client

INT32_MAX = 2**31 - 1
LEAKS = ("$1", "$2", "INSERT", "SELECT", "UPDATE", "query argument", "int64", "int32", "0x00")


class Crate(Entity, table=True):
    id: int | None = Field(default=None, primary_key=True)
    label: str = "crate"
    count: int = 0
    serial: int = Field(default=0, sa_type=BigInteger)

    @event
    def add(self, amount: int):
        self.count += amount


def staff(ctx: Any) -> bool:
    return ctx.user == "staff"


@pytest.fixture
async def sm(database_url: str) -> Any:
    sm = StarModel(entities=[Crate], database_url=database_url, secret_key="limits-sql")

    async def user_from_header(request: Any) -> str | None:
        return request.headers.get("x-test-user")

    sm.user_loader = user_from_header
    sm.crud(Crate)
    sm.admin(allow=staff)
    async with sm.app.router.lifespan_context(sm.app):
        yield sm


@pytest.fixture
async def client(sm: StarModel) -> Any:
    async with asgi_client(sm) as client:
        yield client


async def rows(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await client.get("/api/crates")).json()["items"]


def leak_free(answer: httpx.Response) -> bool:
    shown = answer.text + answer.headers.get("x-starmodel-error", "")
    return not any(word in shown for word in LEAKS)


@pytest.mark.parametrize("page", ["99999999999999999999", "9223372036854775807", "92233720368547758"])
async def test_a_page_past_any_offset_is_refused_everywhere(client, page):
    staff_user = {"x-test-user": "staff"}
    answers = [
        await client.get("/api/crates", params={"page": page}),
        await client.get("/crates", params={"page": page}),
        await client.get("/admin/crate", params={"page": page}, headers=staff_user),
        await client.get("/_starmodel/ui/crate/list", params={"page": page}, headers=DATASTAR),
        await client.get("/admin/_ui/crate/list", params={"page": page}, headers={**DATASTAR, **staff_user}),
    ]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [422, 400, 400, 422, 422], [answer.text[:200] for answer in answers]
    assert all(leak_free(answer) for answer in answers)


async def test_whole_numbers_out_of_their_column_range_are_refused_by_field(sm, client):
    wide = sm.services.database.is_sqlite  # SQLite keeps 64 bits in every integer column
    made = await client.post("/api/crates", json={"count": INT32_MAX + 1})
    assert made.status_code == (201 if wide else 422), made.text
    if not wide:
        assert made.json()["errors"] == {"count": f"must be between {-INT32_MAX - 1} and {INT32_MAX}"}
    assert (await client.post("/api/crates", json={"serial": 2**40})).status_code == 201
    huge = await client.post("/api/crates", json={"count": 2**64, "serial": -(2**64)})
    assert huge.status_code == 422 and set(huge.json()["errors"]) == {"count", "serial"}
    assert leak_free(made) and leak_free(huge)
    assert len(await rows(client)) == (2 if wide else 1)


async def test_an_event_pushing_a_number_out_of_range_changes_nothing(client):
    key = (await client.post("/api/crates", json={"count": 1})).json()["id"]
    answer = await client.post(
        "/crate/add", params={"_key": key, "amount": str(2**65)}, content="{}", headers=DATASTAR
    )
    assert answer.status_code == 422, answer.text
    assert leak_free(answer)
    assert [row["count"] for row in await rows(client)] == [1]


@pytest.mark.parametrize("key", ["9" * 30, str(2**63), str(-(2**63) - 1)])
async def test_a_key_no_record_can_have_is_not_found(client, key):
    assert (await client.get(f"/api/crates/{key}")).status_code == 404
    assert (await client.patch(f"/api/crates/{key}", json={"label": "x"})).status_code == 404


async def test_a_value_the_database_refuses_is_422_without_its_text(sm, client):
    answer = await client.post("/api/crates", json={"label": "nul \x00 inside"})
    if sm.services.database.is_sqlite:  # SQLite stores it
        assert answer.status_code == 201
    else:
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"] == {"__root__": "a value the database cannot store"}
        assert leak_free(answer)


async def test_a_query_postgresql_refuses_is_not_the_database_being_down(postgres):
    """A list query past what PostgreSQL takes (the record service refuses such pages before
    this): a refused value, not "the database cannot be queried" quoting the statement."""
    sm = StarModel(entities=[Crate], database_url=postgres.url, secret_key="limits-sql")
    async with sm.app.router.lifespan_context(sm.app):
        finder = SqlRecordFinder(sm.services.database)
        with pytest.raises(ValidationFailed) as refused:
            await finder.find(Crate, ListQuery(page=2**62, per_page=100))
    assert not any(word in str(refused.value) for word in LEAKS)


def failure(kind: type[DBAPIError], message: str, sqlstate: str | None = None) -> DBAPIError:
    """A driver error as SQLAlchemy wraps it (its statement and values included)."""
    orig = Exception(message)
    if sqlstate:
        orig.sqlstate = sqlstate  # type: ignore[attr-defined]
    return kind("UPDATE crate SET count=$1 WHERE id=$2", (2**40, 1), orig)


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        (failure(DataError, "invalid input for query argument $1: 1099511627776"), ValidationFailed, 422),
        (failure(DBAPIError, "value out of int64 range", sqlstate="22003"), ValidationFailed, 422),
        (failure(DBAPIError, "could not serialize access", sqlstate="40001"), ConcurrencyError, 409),
        (failure(OperationalError, "server closed the connection unexpectedly"), StoreUnavailable, 503),
        (failure(DBAPIError, "terminating connection", sqlstate="57P01"), StoreUnavailable, 503),
        (failure(DBAPIError, 'syntax error at or near "SELEC"', sqlstate="42601"), StarModelError, 500),
        (failure(IntegrityError, "UNIQUE constraint failed: crate.label"), ValidationFailed, 422),
    ],
)
def test_failed_statements_say_what_they_mean_without_quoting_them(error, kind, status):
    found = statement_error(error, Crate)
    assert type(found) is kind and found.status_code == status
    assert "$1" not in str(found) and "1099511627776" not in str(found) and "UPDATE" not in str(found)
    if status == 500:
        assert "unavailable" not in str(found) and "reached" not in str(found)

