"""``Auth(sm)``: user accounts, sign-in pages and the signed-in user of every request."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse

from starmodel.adapters.driving.web.identity import peek_session_id, remember_user, set_session_id
from starmodel.adapters.driving.web.requests import EventRequest
from starmodel.bootstrap import StarModel
from starmodel.contrib.auth._redact import hide_password_hashes
from starmodel.contrib.auth.forms import is_local_path, safe_next
from starmodel.contrib.auth.pages import AuthPaths, logout_button
from starmodel.contrib.auth.passwords import MAX_PASSWORD_BYTES, Passwords, password_problem
from starmodel.contrib.auth.ratelimit import (
    Attempts,
    FallbackAttempts,
    MemoryAttempts,
    RateLimit,
    RedisAttempts,
)
from starmodel.contrib.auth.routes import AuthRoutes
from starmodel.contrib.auth.signin import SignIn, SignInsEnded, sign_in_key
from starmodel.contrib.auth.store import SignInStore, UserStore
from starmodel.contrib.auth.user import MAX_NAME, User, email_problem, normalize_email
from starmodel.contrib.auth.views import UserViews
from starmodel.core.errors import ConfigurationError, EntityNotFound, StoreUnavailable, ValidationFailed

__all__ = ["DEFAULT_RATE_LIMIT", "EMAIL_TAKEN", "UID_KEY", "Auth"]

UID_KEY = "starmodel_uid"
"""Session key of the signed-in user's id. It counts only while the session's sign-in exists
on the server (table ``sign_ins``, keyed by a digest of the session id)."""
DEFAULT_RATE_LIMIT = RateLimit()
EMAIL_TAKEN = "An account with this email exists already"
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
log = logging.getLogger("starmodel.auth")


class Auth:
    """Installs user accounts on a StarModel app.

    It serves the ``User`` and ``SignIn`` entities (tables ``users`` and ``sign_ins``), makes
    the signed-in user the ``ctx.user`` of every event and gives the sign-in and sign-out
    URLs (both through ``sm.use_auth``), and adds the routes ``GET/POST {prefix}/login``,
    ``GET/POST {prefix}/register`` (unless ``registration=False``), ``POST {prefix}/logout``
    and ``POST {prefix}/users/{id}/signout`` (sign a user out everywhere: staff, or the user).

    Args:
        sm: the app.
        prefix: where the routes live.
        after_login: where a sign-in goes when the page asked for no ``next``.
        after_logout: where signing out goes.
        registration: whether visitors may create accounts themselves.
        rate_limit: failed sign-ins allowed per client address and per email (``None``: no
            limit). Counted in Redis when the app has ``REDIS_URL``, else in memory.
        passwords: the password hasher (argon2id).
        sign_in_for: seconds a sign-in lasts (default: the app's ``session_max_age``,
            ``STARMODEL_SESSION_MAX_AGE``, 14 days unless set); then the user signs in again.

    Example::

        sm = StarModel()
        auth = Auth(sm, after_login="/orders")
    """

    def __init__(
        self,
        sm: StarModel,
        *,
        prefix: str = "/auth",
        after_login: str = "/",
        after_logout: str = "/",
        registration: bool = True,
        rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
        passwords: Passwords | None = None,
        sign_in_for: float | None = None,
    ) -> None:
        if not isinstance(sm, StarModel):
            raise ConfigurationError(f"Auth needs a StarModel app, not {type(sm).__name__}")
        if Auth.of(sm) is not None:
            raise ConfigurationError("Auth is installed on this app already")
        prefix = prefix.rstrip("/")
        if not _PREFIX.match(prefix):
            raise ConfigurationError(f"Auth: prefix must be a path such as '/auth', not {prefix!r}")
        for name, target in (("after_login", after_login), ("after_logout", after_logout)):
            if not is_local_path(target):
                raise ConfigurationError(
                    f"Auth: {name} must be a path on this site, such as '/', not {target!r}"
                )
        if sign_in_for is None:
            sign_in_for = sm.settings.session_max_age
        if sign_in_for <= 0:
            raise ConfigurationError("Auth: sign_in_for must be a positive number of seconds")
        self.sm = sm
        self.sign_in_for = sign_in_for
        self.after_login = after_login
        self.after_logout = after_logout
        self.paths = AuthPaths(
            login=f"{prefix}/login",
            logout=f"{prefix}/logout",
            register=f"{prefix}/register" if registration else None,
            users=f"{prefix}/users",
        )
        self.store = UserStore(sm)
        self.sign_ins = SignInStore(sm)
        self.passwords = passwords or Passwords()
        self.attempts = self._attempts(rate_limit)

        sm.include(User, SignIn)
        sm.views(User, UserViews.serving(self.paths))  # the admin's user pages use them
        sm.subscribe(SignInsEnded, self._close_streams, everywhere=True)
        sm.use_auth(self.load_user, login_url=self.paths.login, logout_url=self.paths.logout)
        sm.startup_hooks.append(self._start)
        sm.shutdown_hooks.append(self._stop)
        sm.app.state.starmodel_auth = self
        hide_password_hashes()
        AuthRoutes(self).install()

    @staticmethod
    def of(sm: Any) -> Auth | None:
        """The ``Auth`` installed on an app, if any."""
        app = getattr(sm, "app", None)
        found = getattr(getattr(app, "state", None), "starmodel_auth", None)
        return found if isinstance(found, Auth) else None

    def _attempts(self, limit: RateLimit | None) -> Attempts | None:
        if limit is None:
            return None
        if not self.sm.settings.redis_url:
            return MemoryAttempts(limit)
        return FallbackAttempts(RedisAttempts(limit, self.sm.services.redis), MemoryAttempts(limit))

    async def _start(self) -> None:
        await self.passwords.warm()

    async def _stop(self) -> None:
        self.passwords.close()

    # --- the signed-in user --------------------------------------------------------------

    async def load_user(self, request: Request | EventRequest) -> User | None:
        """The user of a request's session while its sign-in lasts: signed out (anywhere),
        expired, made with a password changed since, or of a deleted user, it is a visitor."""
        session = request.scope.get("session")
        if not isinstance(session, dict):
            return None
        user_id, session_id = session.get(UID_KEY), peek_session_id(request)
        if type(user_id) is not int:
            return None
        key = sign_in_key(session_id) if session_id is not None else None
        found = await self.sign_ins.find(key) if key else None
        if key and found is not None and found.user_id == user_id:
            if found.expired(datetime.now(UTC)):
                with contextlib.suppress(StoreUnavailable):  # the next sign-in removes it anyway
                    await self._forget(key)
            elif hmac.compare_digest(found.password_check, self._fingerprint(found.user)):
                return found.user
        session.pop(UID_KEY, None)
        return None

    async def user(self, request: Request | EventRequest) -> User | None:
        """The signed-in user of a page request (``None`` for a visitor); looked up once."""
        found = await self.sm.current_user(request)
        return found if isinstance(found, User) else None

    def login_redirect(self, request: Request) -> RedirectResponse:
        """A 303 to the sign-in page that comes back to this page afterwards."""
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = safe_next(here, self.after_login)
        return RedirectResponse(f"{self.paths.login}?{urlencode({'next': target})}", 303)

    def logout_button(self, label: str = "Sign out", **attrs: Any) -> Any:
        """A MonsterUI button that signs out (POST) and goes to ``after_logout``."""
        return logout_button(self.paths.logout, label, **attrs)

    async def sign_in(self, request: Request, user: User) -> None:
        """Sign ``user`` in on this request's session, under a new session id (an id
        planted before sign-in is worth nothing after it): session-scoped entity state
        starts fresh. A sign-in the session had already ends, then the new one is recorded
        (``StoreUnavailable`` if that cannot be done: the session is left as it was)."""
        if user.id is None:
            raise ValueError("sign_in: the user is not saved yet")
        session = request.scope["session"]
        previous = peek_session_id(request)
        if UID_KEY in session and previous is not None:
            await self._forget(sign_in_key(previous))
        session_id = secrets.token_urlsafe(18)
        expires = datetime.now(UTC) + timedelta(seconds=self.sign_in_for)
        await self.sign_ins.add(sign_in_key(session_id), user.id, expires, self._fingerprint(user))
        set_session_id(request, session_id)
        session[UID_KEY] = user.id
        remember_user(request, user)

    async def sign_out(self, request: Request) -> None:
        """End this session's sign-in (every copy of its cookie is signed out with it), then
        forget the session and start a new one. ``StoreUnavailable`` if the sign-in cannot
        be ended: the session is left as it was."""
        session = request.scope["session"]
        session_id = peek_session_id(request)
        if UID_KEY in session and session_id is not None:
            await self._forget(sign_in_key(session_id))
        set_session_id(request, secrets.token_urlsafe(18), clear=True)
        remember_user(request, None)

    async def sign_out_everywhere(self, user: User) -> int:
        """End every sign-in of ``user``, in every browser and process; how many there were."""
        if user.id is None:
            return 0
        keys = await self.sign_ins.end_all(user.id)
        await self._announce(keys)
        return len(keys)

    async def _forget(self, key: str) -> None:
        if await self.sign_ins.end(key):
            await self._announce([key])

    async def _announce(self, keys: list[str]) -> None:
        if keys:
            await self.sm.services.bus.publish(SignInsEnded(keys))

    async def _close_streams(self, fact: SignInsEnded) -> None:
        """Bus subscriber (every process): the live streams of ended sign-ins reconnect."""
        ended = set(fact.keys)
        self.sm.hub.close_sessions(lambda session_id: sign_in_key(session_id) in ended, "signed out")

    def _fingerprint(self, user: User) -> str:
        key = (self.sm.settings.secret_key or "").encode("utf-8")
        message = f"starmodel-auth:{user.id}:{user.password_hash}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]

    # --- accounts ------------------------------------------------------------------------

    async def create_user(self, email: str, password: str, *, name: str = "", staff: bool = False) -> User:
        """Create an account; ``ValidationFailed`` (one message per field) if the email is
        invalid or taken, the password too short or too long, or the name too long."""
        email, name = normalize_email(email), name.strip()
        errors = {}
        for field, problem in (("email", email_problem(email)), ("password", password_problem(password))):
            if problem:
                errors[field] = problem
        if len(name) > MAX_NAME:
            errors["name"] = f"A name has at most {MAX_NAME} characters"
        if not errors and await self.store.by_email(email) is not None:
            errors["email"] = EMAIL_TAKEN
        if errors:
            raise ValidationFailed(errors, "Account not created")
        user = User(email=email, name=name, password_hash=await self.passwords.hash(password), is_staff=staff)
        try:
            return await self.store.add(user)
        except ValidationFailed as exc:
            if "email" in exc.errors:  # registered meanwhile by another request
                raise ValidationFailed({"email": EMAIL_TAKEN}, "Account not created") from None
            raise

    async def authenticate(self, email: str, password: str) -> User | None:
        """The user with this email and password, or ``None``. Takes as long for an unknown
        email as for a wrong password; a hash made with older parameters is made again."""
        email = normalize_email(email)
        if len(password.encode("utf-8", "replace")) > MAX_PASSWORD_BYTES:
            return None
        user = None if email_problem(email) else await self.store.by_email(email)
        if not await self.passwords.verify(user.password_hash if user else None, password) or user is None:
            return None
        if self.passwords.needs_rehash(user.password_hash) and user.id is not None:
            before = self._fingerprint(user)
            user.password_hash = await self.passwords.hash(password)
            await self.store.set_password_hash(user.id, user.password_hash)
            await self.sign_ins.recheck(user.id, before, self._fingerprint(user))
        return user

    async def set_password(self, user: User, password: str) -> int:
        """Give ``user`` a new password and end every sign-in of theirs (in every browser and
        process); how many ended. ``ValidationFailed`` if the password is too short or too
        long, ``EntityNotFound`` if the user no longer exists."""
        problem = password_problem(password)
        if problem:
            raise ValidationFailed({"password": problem}, "Password not changed")
        password_hash = await self.passwords.hash(password)
        if user.id is None or not await self.store.replace_password_hash(user.id, password_hash):
            raise EntityNotFound(f"User {user.email} does not exist")
        user.password_hash = password_hash
        return await self.sign_out_everywhere(user)
