"""Refused and failing events: status codes, visible errors, and state left unchanged."""

import json

import pytest
from sm_http import (
    DATASTAR,
    asgi_client,
    live_server,
    of_type,
    parse_sse,
    post_event,
    socket_client,
    state_signals,
)

from starmodel import Entity, StarModel, computed, event, redirect


def only_admins(ctx):
    return ctx.user == "admin"


class Wallet(Entity):
    balance: int = 0
    owner: str = ""

    @computed
    def doubled(self) -> int:
        return self.balance * 2

    @event
    def deposit(self, amount: int = 1):
        self.balance += amount

    @event
    def rename(self, owner: str):
        self.owner = owner

    @event
    def transfer(self, amount: int, fee: int = 0):
        self.balance -= amount + fee

    @event
    def crash(self):
        self.balance = 1_000_000
        raise RuntimeError("database on fire")

    @event
    def withdraw(self, amount: int):
        if amount > self.balance:
            message = f"cannot withdraw {amount}: balance is {self.balance}"
            self.balance = -1
            raise ValueError(message)
        self.balance -= amount

    @event
    def corrupt(self):
        self.balance = "lots"  # type: ignore[assignment]

    @event(allow=only_admins)
    def audit(self):
        self.balance = 0

    @event
    def escape_hatch(self):
        self.balance += 1
        return redirect("javascript:alert(document.cookie)")

    @event
    def say(self):
        self.balance += 1
        return "plain text is not a component"

    @event
    def echo(self, text: str):
        raise ValueError(f"bad text {text}")

    @event
    async def batch(self, size: int = 1):
        if size > 10:
            raise ValueError("size must be at most 10")
        for _ in range(size):
            self.balance += 1
            yield None


class Account(Entity):
    model_config = {"scope": "id"}
    credit: int = 0

    @event
    def add(self, amount: int):
        self.credit += amount


@pytest.fixture
def sm():
    return StarModel(entities=[Wallet, Account], secret_key="test")


@pytest.fixture
async def client(sm):
    async with asgi_client(sm) as client:
        yield client


@pytest.fixture
def balance(sm):
    """The stored balance of the (only) wallet, read from the store itself."""

    async def read() -> int | None:
        wallets = await sm.services.repository_for(Wallet).list(Wallet)
        assert len(wallets) <= 1
        return wallets[0].balance if wallets else None

    return read


def field_errors(response) -> dict[str, str]:
    for item in of_type(parse_sse(response.text), "datastar-patch-signals"):
        errors = item.signals.get("wallet", {}).get("_errors")
        if errors is not None:
            return errors
    raise AssertionError(f"no wallet._errors signal in {response.text!r}")


def error_toasts(response) -> list[str]:
    return [
        e.elements
        for e in of_type(parse_sse(response.text), "datastar-patch-elements")
        if e.value("selector") == "#starmodel-toasts" and 'data-variant="error"' in e.elements
    ]


# --- routing -----------------------------------------------------------------------------


async def test_non_event_method_is_not_found(client):
    for name in ("model_dump", "public_state", "emit", "doubled", "balance"):
        response = await post_event(client, f"/wallet/{name}")
        assert response.status_code == 404, name


async def test_unknown_entity_is_not_found(client):
    response = await post_event(client, "/nobody/deposit")
    assert response.status_code == 404


async def test_wrong_method_is_not_allowed(client):
    response = await client.get("/wallet/deposit", headers=DATASTAR)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    response = await client.delete("/wallet/deposit", headers=DATASTAR)
    assert response.status_code == 405


# --- bad parameters ----------------------------------------------------------------------


async def test_bad_parameter_type_is_422_with_field_error(client, balance):
    await post_event(client, "/wallet/deposit", amount=5)
    response = await post_event(client, "/wallet/deposit", amount="lots")
    assert response.status_code == 422
    assert list(field_errors(response)) == ["amount"]
    assert "integer" in field_errors(response)["amount"]
    assert error_toasts(response)
    assert await balance() == 5


async def test_next_successful_call_clears_the_field_errors(client):
    await post_event(client, "/wallet/deposit", amount="lots")
    response = await post_event(client, "/wallet/deposit", amount=2)
    assert response.status_code == 200
    assert field_errors(response) == {"amount": ""}
    assert state_signals(parse_sse(response.text)) == {"wallet": {"balance": 2, "doubled": 4}}


async def test_missing_required_parameter_is_422(client, balance):
    await post_event(client, "/wallet/deposit", amount=5)
    response = await post_event(client, "/wallet/transfer")
    assert response.status_code == 422
    assert field_errors(response) == {"amount": "Field required"}
    assert await balance() == 5


async def test_extra_parameter_is_422(client, balance):
    await post_event(client, "/wallet/deposit", amount=5)
    response = await post_event(client, "/wallet/deposit", amount=1, bonus=100)
    assert response.status_code == 422
    assert field_errors(response) == {"bonus": "Unexpected parameter"}
    assert await balance() == 5


async def test_several_field_errors_at_once(client):
    response = await post_event(client, "/wallet/transfer", amount="x", fee=[1])
    assert response.status_code == 422
    assert set(field_errors(response)) == {"amount", "fee"}


async def test_parameter_from_signals_is_validated_too(client):
    response = await post_event(client, "/wallet/transfer", signals={"wallet": {"amount": "x"}})
    assert response.status_code == 422
    assert list(field_errors(response)) == ["amount"]


async def test_invalid_json_body_is_refused(client):
    response = await client.post(
        "/wallet/deposit", content="{not json", headers={**DATASTAR, "Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert error_toasts(response)


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "42", "null"])
async def test_non_object_body_is_refused(client, body):
    response = await client.post(
        "/wallet/deposit", content=body, headers={**DATASTAR, "Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422)


async def test_empty_body_is_accepted(client):
    response = await client.post("/wallet/deposit", headers=DATASTAR)
    assert response.status_code == 200
    assert state_signals(parse_sse(response.text)) == {"wallet": {"balance": 1, "doubled": 2}}


async def test_huge_body_is_refused(client):
    body = json.dumps({"wallet": {"owner": "x" * 1_100_000}})
    response = await client.post(
        "/wallet/deposit", content=body, headers={**DATASTAR, "Content-Type": "application/json"}
    )
    assert response.status_code in (400, 413, 422)


# --- failures inside events --------------------------------------------------------------


async def test_exception_rolls_back_and_server_keeps_serving(client, balance, caplog):
    await post_event(client, "/wallet/deposit", amount=7)
    response = await post_event(client, "/wallet/crash")
    assert response.status_code == 500
    toasts = error_toasts(response)
    assert toasts
    assert "database on fire" not in response.text  # internals are not shown by default
    assert await balance() == 7
    response = await post_event(client, "/wallet/deposit", amount=1)
    assert response.status_code == 200
    assert await balance() == 8
    assert "database on fire" in caplog.text  # but they are logged


async def test_debug_setting_shows_the_exception_in_the_toast():
    sm = StarModel(entities=[Wallet], secret_key="test", debug=True)
    async with asgi_client(sm) as client:
        response = await post_event(client, "/wallet/crash")
        assert response.status_code == 500
        [toast] = error_toasts(response)
        assert "database on fire" in toast


async def test_value_error_is_422_with_its_message(client, balance):
    await post_event(client, "/wallet/deposit", amount=3)
    response = await post_event(client, "/wallet/withdraw", amount=10)
    assert response.status_code == 422
    [toast] = error_toasts(response)
    assert "cannot withdraw 10: balance is 3" in toast
    assert await balance() == 3


async def test_invalid_assignment_in_event_is_422_and_rolled_back(client, balance):
    await post_event(client, "/wallet/deposit", amount=3)
    response = await post_event(client, "/wallet/corrupt")
    assert response.status_code == 422
    assert list(field_errors(response)) == ["balance"]
    assert await balance() == 3


async def test_refused_by_allow_hook_is_403_and_changes_nothing(client, balance):
    await post_event(client, "/wallet/deposit", amount=3)
    response = await post_event(client, "/wallet/audit")
    assert response.status_code == 403
    assert error_toasts(response)
    assert await balance() == 3


async def test_error_message_is_escaped_in_the_toast(client):
    response = await post_event(client, "/wallet/echo", text="<img src=x onerror=alert(1)>")
    assert response.status_code == 422
    [toast] = error_toasts(response)
    assert "<img" not in toast
    assert "&lt;img src=x onerror=alert(1)&gt;" in toast


async def test_error_message_with_line_breaks_still_gets_an_answer(sm):
    async with live_server(sm) as url, socket_client(url) as client:
        response = await post_event(client, "/wallet/echo", text="a\r\nSet-Cookie: stolen=1")
        assert response.status_code == 422
        assert "stolen" not in response.headers.get("set-cookie", "")
        assert error_toasts(response)


async def test_unsafe_redirect_is_refused_with_a_visible_error(sm):
    async with asgi_client(sm, raise_app_exceptions=False) as client:
        response = await post_event(client, "/wallet/escape_hatch")
        assert "javascript:" not in response.text
        assert response.status_code >= 400
        assert error_toasts(response)
        assert (await post_event(client, "/wallet/deposit")).status_code == 200


async def test_bare_string_result_is_a_visible_error(sm):
    async with asgi_client(sm, raise_app_exceptions=False) as client:
        response = await post_event(client, "/wallet/say")
        assert response.status_code == 500
        assert error_toasts(response)
        assert (await post_event(client, "/wallet/deposit")).status_code == 200


async def test_value_error_before_the_first_yield_is_422(client, balance):
    await post_event(client, "/wallet/deposit", amount=3)
    response = await post_event(client, "/wallet/batch", size=50)
    assert error_toasts(response)
    assert "size must be at most 10" in response.text
    assert response.status_code == 422
    assert await balance() == 3


async def test_keyed_entity_without_a_key_is_not_found(client):
    response = await post_event(client, "/account/add", amount=5)
    assert response.status_code == 404


async def test_instance_action_addresses_its_own_record(client, sm):
    repository = sm.services.repository_for(Account)
    account = Account(credit=1)
    account._sm_key = "acc-1"
    await repository.save(account)
    await repository.commit()
    expression = account.add(5)  # what a page renders for this record's button
    url = expression.split("'")[1]
    response = await client.post(url, content="{}", headers=DATASTAR)
    assert response.status_code == 200
    stored = await repository.get(Account, "acc-1")
    assert stored is not None and stored.credit == 6


async def test_component_result_still_works_after_errors(client):
    await post_event(client, "/wallet/crash")
    await post_event(client, "/wallet/withdraw", amount=1)
    response = await post_event(client, "/wallet/deposit", amount=2)
    assert response.status_code == 200
    assert state_signals(parse_sse(response.text)) == {"wallet": {"balance": 2, "doubled": 4}}
