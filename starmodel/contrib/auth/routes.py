"""The HTTP side of the auth plugin: sign-in, registration and sign-out pages and posts.

Every POST passes the app's cross-site check first (Datastar header, Origin, Sec-Fetch-Site)
and answers with Datastar SSE: error slots patched in the form, or a redirect.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from starmodel.adapters.driving.datastar.sse import error_events, render_outputs
from starmodel.contrib.auth.forms import FormRefused, read_form, safe_next
from starmodel.contrib.auth.pages import (
    LOGIN_FIELDS,
    LOGIN_FORM,
    REGISTER_FIELDS,
    REGISTER_FORM,
    error_slots,
    login_page,
    register_page,
)
from starmodel.contrib.auth.passwords import MAX_PASSWORD_BYTES, password_problem
from starmodel.contrib.auth.ratelimit import address_key, email_key
from starmodel.contrib.auth.user import MAX_NAME, email_problem, normalize_email
from starmodel.core.actions import redirect, toast
from starmodel.core.errors import StarModelError, ValidationFailed

if TYPE_CHECKING:
    from starmodel.contrib.auth.plugin import Auth

__all__ = ["WRONG_CREDENTIALS", "AuthRoutes"]

WRONG_CREDENTIALS = "Email or password is incorrect"
UNAVAILABLE = "Signing in is not possible right now; please try again in a moment"
SIGN_OUT_UNAVAILABLE = "Signing out is not possible right now; please try again in a moment"
log = logging.getLogger("starmodel.auth")


def _sse(status: int, outputs: list[Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        render_outputs(outputs),
        status_code=status,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _refused(status: int, message: str) -> Response:
    return Response(error_events(message), status_code=status, media_type="text/event-stream",
                    headers={"Cache-Control": "no-store"})


def _too_many(seconds: int) -> str:
    wait = f"{seconds} seconds" if seconds < 90 else f"{math.ceil(seconds / 60)} minutes"
    return f"Too many failed attempts; try again in {wait}"


class AuthRoutes:
    """The plugin's route handlers, registered on the app's FastHTML router."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth
        self.sm = auth.sm

    def install(self) -> None:
        route = self.sm.app.route
        paths = self.auth.paths
        route(paths.login, methods=["get"])(self.login_form)
        route(paths.login, methods=["post"])(self.login)
        route(paths.logout, methods=["post"])(self.logout)
        route(paths.sign_out_everywhere("{user_id:int}"), methods=["post"])(self.sign_out_everywhere)
        if paths.register:
            route(paths.register, methods=["get"])(self.register_form)
            route(paths.register, methods=["post"])(self.register)

    # --- pages ---------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Any:
        next_url = safe_next(request.query_params.get("next"), self.auth.after_login)
        try:
            user = await self.auth.user(request)
        except StarModelError:
            user = None  # the database is down: the page still shows, the post will say so
        return login_page(self.auth.paths, next_url=next_url, default_next=self.auth.after_login,
                          signed_in_as=user.email if user else None)

    async def register_form(self, request: Request) -> Any:
        next_url = safe_next(request.query_params.get("next"), self.auth.after_login)
        return register_page(self.auth.paths, next_url=next_url, default_next=self.auth.after_login)

    # --- posts ---------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        form, refused = await self._read(request, LOGIN_FORM, LOGIN_FIELDS)
        if refused is not None:
            return refused
        email, password = normalize_email(form.get("email", "")), form.get("password", "")
        errors = {}
        problem = email_problem(email)
        if problem:
            errors["email"] = problem
        if not password:
            errors["password"] = "Enter your password"
        elif len(password.encode("utf-8", "replace")) > MAX_PASSWORD_BYTES:
            errors["password"] = f"A password has at most {MAX_PASSWORD_BYTES} bytes"
        if errors:
            return self._form_answer(LOGIN_FORM, LOGIN_FIELDS, 422, None, errors)
        keys = [address_key(_client(request)), email_key(email)]
        attempts = self.auth.attempts
        if attempts is not None:
            wait = await attempts.retry_after(keys)
            if wait is not None:
                return self._form_answer(LOGIN_FORM, LOGIN_FIELDS, 429, _too_many(wait),
                                         headers={"Retry-After": str(wait)})
        try:
            user = await self.auth.authenticate(email, password)
        except StarModelError as exc:
            log.warning("sign-in not possible: %s", exc)
            return self._form_answer(LOGIN_FORM, LOGIN_FIELDS, 503, UNAVAILABLE)
        if user is None:
            if attempts is not None:
                await attempts.fail(keys)
            log.info("failed sign-in from %s", _client(request))
            return self._form_answer(LOGIN_FORM, LOGIN_FIELDS, 400, WRONG_CREDENTIALS)
        if attempts is not None:
            await attempts.clear(keys[1])
        try:
            await self.auth.sign_in(request, user)
        except StarModelError as exc:
            log.warning("sign-in not possible: %s", exc)
            return self._form_answer(LOGIN_FORM, LOGIN_FIELDS, 503, UNAVAILABLE)
        return _sse(200, [redirect(safe_next(form.get("next"), self.auth.after_login))])

    async def register(self, request: Request) -> Response:
        form, refused = await self._read(request, REGISTER_FORM, REGISTER_FIELDS)
        if refused is not None:
            return refused
        email, password = normalize_email(form.get("email", "")), form.get("password", "")
        name = form.get("name", "").strip()
        errors = {}
        problem = email_problem(email)
        if problem:
            errors["email"] = problem
        problem = password_problem(password) if password else "Choose a password"
        if problem:
            errors["password"] = problem
        elif form.get("password_confirm", "") != password:
            errors["password_confirm"] = "The two passwords differ"
        if len(name) > MAX_NAME:
            errors["name"] = f"A name has at most {MAX_NAME} characters"
        if errors:
            return self._form_answer(REGISTER_FORM, REGISTER_FIELDS, 422, None, errors)
        address = [address_key(_client(request))]
        attempts = self.auth.attempts
        if attempts is not None:
            wait = await attempts.retry_after(address)
            if wait is not None:
                return self._form_answer(REGISTER_FORM, REGISTER_FIELDS, 429, _too_many(wait),
                                         headers={"Retry-After": str(wait)})
        try:
            user = await self.auth.create_user(email, password, name=name)
        except ValidationFailed as exc:
            if attempts is not None and "email" in exc.errors:
                await attempts.fail(address)  # probing which emails have accounts counts as failing
            return self._form_answer(REGISTER_FORM, REGISTER_FIELDS, 422, None, exc.errors)
        except StarModelError as exc:
            log.warning("registration not possible: %s", exc)
            return self._form_answer(REGISTER_FORM, REGISTER_FIELDS, 503, UNAVAILABLE)
        try:
            await self.auth.sign_in(request, user)
        except StarModelError as exc:  # the account exists: signing in later works
            log.warning("sign-in after registration not possible: %s", exc)
            return self._form_answer(REGISTER_FORM, REGISTER_FIELDS, 503, UNAVAILABLE)
        return _sse(200, [redirect(safe_next(form.get("next"), self.auth.after_login))])

    async def logout(self, request: Request) -> Response:
        refusal = self.sm.refuse_cross_site(request)
        if refusal:
            return Response(error_events(refusal), status_code=403, media_type="text/event-stream")
        try:
            await self.auth.sign_out(request)
        except StarModelError as exc:  # still signed in (here and in every copy): say so
            log.warning("sign-out not possible: %s", exc)
            return _refused(503, SIGN_OUT_UNAVAILABLE)
        return _sse(200, [redirect(self.auth.after_logout)])

    async def sign_out_everywhere(self, request: Request) -> Response:
        """End every sign-in of the user ``{user_id}``: staff may for anyone, a user for
        themselves (then this browser is signed out too and goes to ``after_logout``)."""
        refusal = self.sm.refuse_cross_site(request)
        if refusal:
            return _refused(403, refusal)
        try:
            caller = await self.auth.user(request)
            if caller is None:
                return _refused(403, "Sign in first")
            if not (caller.is_staff or caller.id == request.path_params["user_id"]):
                return _refused(403, "Only staff may sign other users out")
            user = await self.auth.store.by_id(request.path_params["user_id"])
            if user is None:
                return _refused(404, "No such user")
            ended = await self.auth.sign_out_everywhere(user)
            if user.id == caller.id:
                await self.auth.sign_out(request)
                return _sse(200, [redirect(self.auth.after_logout)])
        except StarModelError as exc:
            log.warning("signing out everywhere not possible: %s", exc)
            return _refused(503, SIGN_OUT_UNAVAILABLE)
        sessions = "1 browser" if ended == 1 else f"{ended} browsers"
        return _sse(200, [toast(f"{user.email} is signed out ({sessions})", "success")])

    # --- helpers -------------------------------------------------------------------------

    async def _read(self, request: Request, form_id: str, fields: tuple[str, ...]
                    ) -> tuple[dict[str, str], Response | None]:
        refusal = self.sm.refuse_cross_site(request)
        if refusal:
            return {}, self._form_answer(form_id, fields, 403, refusal)
        try:
            return await read_form(request, (*fields, "next")), None
        except FormRefused as exc:
            return {}, self._form_answer(form_id, fields, exc.status, exc.message)

    @staticmethod
    def _form_answer(form_id: str, fields: tuple[str, ...], status: int, message: str | None,
                     errors: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Response:
        return _sse(status, error_slots(form_id, fields, message, errors), headers)


def _client(request: Request) -> str:
    """The client's address as the server sees it (behind a proxy, run the server with its
    forwarded-header option so that this is the visitor's)."""
    return request.client.host if request.client else "unknown"
