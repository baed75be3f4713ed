"""Password rules and argon2id: what is stored, constant work for unknown users, rehashing."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from auth_kit import PASSWORD, Browser, fast_passwords, make_app, running

from starmodel.contrib.auth import Passwords, password_problem
from starmodel.core.errors import ConfigurationError


@pytest.mark.parametrize("password, problem", [
    ("", "Use at least 8 characters"),
    ("seven77", "Use at least 8 characters"),
    ("eight888", None),
    ("é" * 512, None),  # 1024 bytes
    ("é" * 513, "Use at most 1024 bytes"),
    ("x" * 5000, "Use at most 1024 bytes"),
    ("bad \udc80 surrogate", "cannot be stored"),
])
def test_password_rules(password, problem):
    found = password_problem(password)
    assert (found is None) if problem is None else (problem in (found or ""))


async def test_the_default_hasher_stores_argon2id():
    passwords = Passwords()
    stored = await passwords.hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$")
    assert extract_parameters(stored).type is Type.ID
    assert await passwords.verify(stored, PASSWORD)
    assert not await passwords.verify(stored, PASSWORD + "!")
    assert stored != await passwords.hash(PASSWORD)  # salted
    passwords.close()


async def test_no_stored_hash_still_costs_a_check_and_fails():
    passwords = fast_passwords()
    assert not await passwords.verify(None, PASSWORD)
    assert passwords._dummy is not None and passwords._dummy.startswith("$argon2id$")
    assert not await passwords.verify("", PASSWORD)
    assert not await passwords.verify("not a hash", PASSWORD)
    passwords.close()


async def test_the_dummy_hash_is_made_at_start_without_hashing_and_checks_like_a_real_one():
    hasher = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=2, hash_len=24, salt_len=12)
    passwords = Passwords(hasher)
    await passwords.warm()  # what the plugin does at start
    assert passwords._pool is None  # no worker thread was needed: nothing was hashed
    dummy = passwords._dummy
    assert dummy is not None
    assert extract_parameters(dummy) == extract_parameters(hasher.hash(PASSWORD))  # same work to check
    assert not await passwords.verify(None, PASSWORD)
    assert not await passwords.verify(dummy, PASSWORD)  # no password matches it
    assert Passwords(hasher)._dummy_hash() != dummy  # random salt and digest
    passwords.close()


def test_only_argon2id_is_accepted():
    with pytest.raises(ConfigurationError, match="argon2id"):
        Passwords(PasswordHasher(type=Type.I))


async def test_the_stored_hash_is_argon2id_and_rehashed_at_sign_in_when_parameters_change(tmp_path):
    sm, auth = make_app(tmp_path)
    async with running(sm):
        user = await auth.create_user("old@example.com", PASSWORD)
        before = (await auth.store.by_id(user.id)).password_hash
        assert extract_parameters(before).type is Type.ID and extract_parameters(before).memory_cost == 1024
        auth.passwords = Passwords(PasswordHasher(time_cost=1, memory_cost=2048, parallelism=1))
        browser = Browser(sm)
        assert (await browser.login("old@example.com", "wrong wrong")).status_code == 400
        assert (await auth.store.by_id(user.id)).password_hash == before  # only a success rehashes
        assert (await browser.login("old@example.com")).status_code == 200
        after = (await auth.store.by_id(user.id)).password_hash
        assert after != before and extract_parameters(after).memory_cost == 2048
        assert "signed in as" in (await browser.http.get("/auth/login")).text  # still signed in
        await browser.aclose()
        auth.passwords.close()
