"""Password rules and argon2id hashing; the slow hashing runs in worker threads."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import ARGON2_VERSION

from starmodel.core.errors import ConfigurationError

__all__ = ["MAX_PASSWORD_BYTES", "MIN_PASSWORD_LENGTH", "Passwords", "password_problem"]

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_BYTES = 1024  # longer input is refused before hashing: no CPU burnt on megabytes
T = TypeVar("T")


def password_problem(password: str) -> str | None:
    """Why ``password`` may not be used, or ``None`` if it may."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters"
    try:
        size = len(password.encode("utf-8"))
    except UnicodeEncodeError:
        return "The password contains characters that cannot be stored"
    if size > MAX_PASSWORD_BYTES:
        return f"Use at most {MAX_PASSWORD_BYTES} bytes"
    return None


class Passwords:
    """Hashes and checks passwords with argon2id.

    Args:
        hasher: an ``argon2.PasswordHasher`` of type argon2id (default: argon2-cffi's
            defaults, RFC 9106's low-memory profile). Changing its parameters later is
            safe: a hash made with others is re-made at the user's next sign-in.
        threads: how many hashes may run at once (each takes its memory cost in RAM).
    """

    def __init__(self, hasher: PasswordHasher | None = None, *, threads: int = 4) -> None:
        self.hasher = hasher or PasswordHasher()
        if self.hasher.type is not Type.ID:
            raise ConfigurationError("Passwords: use an argon2id hasher (argon2.Type.ID)")
        if threads < 1:
            raise ConfigurationError("Passwords: threads must be at least 1")
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._dummy: str | None = None

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="starmodel-argon2")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def hash(self, password: str) -> str:
        """A new argon2id hash of ``password`` (salted: two calls give different hashes)."""
        return await self._in_thread(self.hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``. With no stored hash (unknown user) a
        dummy hash is checked all the same, so the answer takes as long either way."""
        return await self._in_thread(self._verify, stored, password)

    async def warm(self) -> None:
        """Make the dummy hash now (no hashing: see ``_dummy_hash``)."""
        self._dummy_hash()

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than the hasher's current ones."""
        try:
            return self.hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    def close(self) -> None:
        """Stop the worker threads (a later call starts new ones)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    def _dummy_hash(self) -> str:
        """An argon2id hash with the hasher's parameters, a random salt and a random digest:
        checking a password against it costs what checking against a real hash costs (the
        digest is computed all the same), and no password matches it. Made without hashing,
        so that it costs the app's start nothing."""
        if self._dummy is None:
            h = self.hasher
            salt, digest = _b64(secrets.token_bytes(h.salt_len)), _b64(secrets.token_bytes(h.hash_len))
            self._dummy = (
                f"$argon2id$v={ARGON2_VERSION}$m={h.memory_cost},t={h.time_cost},p={h.parallelism}"
                f"${salt}${digest}"
            )
        return self._dummy

    def _verify(self, stored: str | None, password: str) -> bool:
        target = stored or self._dummy_hash()
        try:
            # argon2's comparison of the computed and the stored digest is constant-time
            return self.hasher.verify(target, password) and bool(stored)
        except (VerificationError, InvalidHashError, UnicodeEncodeError):
            return False


def _b64(raw: bytes) -> str:
    """Base64 without padding, as argon2's encoded hashes write salts and digests."""
    return base64.b64encode(raw).decode("ascii").rstrip("=")
