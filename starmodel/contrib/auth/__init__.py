"""User accounts for StarModel apps: ``Auth(sm)`` adds the ``User`` entity, sign-in,
registration and sign-out pages, argon2id password hashing, rate-limited sign-in, and the
signed-in user as ``ctx.user`` of every event (see docs/auth.md).

Example::

    from starmodel import StarModel, event
    from starmodel.contrib.auth import Auth, staff

    sm = StarModel()
    auth = Auth(sm)
"""

from starmodel.contrib.auth.passwords import (
    MAX_PASSWORD_BYTES,
    MIN_PASSWORD_LENGTH,
    Passwords,
    password_problem,
)
from starmodel.contrib.auth.plugin import AUTH_KEY, EMAIL_TAKEN, SINCE_KEY, UID_KEY, Auth
from starmodel.contrib.auth.policies import signed_in, staff
from starmodel.contrib.auth.ratelimit import RateLimit
from starmodel.contrib.auth.routes import WRONG_CREDENTIALS
from starmodel.contrib.auth.user import User

__all__ = [
    "AUTH_KEY",
    "EMAIL_TAKEN",
    "MAX_PASSWORD_BYTES",
    "MIN_PASSWORD_LENGTH",
    "SINCE_KEY",
    "UID_KEY",
    "WRONG_CREDENTIALS",
    "Auth",
    "Passwords",
    "RateLimit",
    "User",
    "password_problem",
    "signed_in",
    "staff",
]
