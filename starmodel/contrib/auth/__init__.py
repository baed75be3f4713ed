"""User accounts for StarModel apps: ``Auth(sm)`` adds the ``User`` entity, sign-in,
registration and sign-out pages, argon2id password hashing, rate-limited sign-in, sign-ins
kept on the server (signing out ends every copy of the cookie), and the signed-in user as
``ctx.user`` of every event (see docs/auth.md).

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
from starmodel.contrib.auth.plugin import EMAIL_TAKEN, UID_KEY, Auth
from starmodel.contrib.auth.policies import signed_in, staff
from starmodel.contrib.auth.ratelimit import RateLimit
from starmodel.contrib.auth.routes import WRONG_CREDENTIALS
from starmodel.contrib.auth.signin import SignIn
from starmodel.contrib.auth.user import User

__all__ = [
    "EMAIL_TAKEN",
    "MAX_PASSWORD_BYTES",
    "MIN_PASSWORD_LENGTH",
    "UID_KEY",
    "WRONG_CREDENTIALS",
    "Auth",
    "Passwords",
    "RateLimit",
    "SignIn",
    "User",
    "password_problem",
    "signed_in",
    "staff",
]
