"""Settings from arguments and the environment (``DATABASE_URL``, ``REDIS_URL``, ``SECRET_KEY``...)."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from starmodel.core.errors import ConfigurationError

__all__ = ["Settings"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    """Everything StarModel reads from its environment, with defaults for development.

    Attributes:
        secret_key: signs session cookies (``SECRET_KEY``); a development key is generated
            and kept in ``.starmodel/secret_key`` when unset.
        database_url: SQL database (``DATABASE_URL``).
        redis_url: Redis for stores and the multi-process bus (``REDIS_URL``); without it
            the bus stays in-process and Redis entities use ``redis://127.0.0.1:6379/0``.
        redis_prefix: first part of every Redis key StarModel writes
            (``STARMODEL_REDIS_PREFIX``, default ``sm``), so apps can share one Redis.
        assets: ``local`` (default): the app serves the Datastar client and theme assets,
            from ``assets_dir`` or the per-user cache; ``cdn``: pages load them from a CDN
            (``STARMODEL_ASSETS``).
        assets_dir: the app's own assets folder, looked in first; ``starmodel assets`` fills
            it, with the compiled Tailwind CSS (``STARMODEL_ASSETS_DIR``).
        cache_dir: where fetched assets and tools are kept for every app of this user
            (``STARMODEL_CACHE_DIR``; default ``$XDG_CACHE_HOME/starmodel``, else
            ``~/.cache/starmodel``).
        migrations_dir: the Alembic migrations of the app's SQL entities
            (``STARMODEL_MIGRATIONS_DIR``); without it, missing tables are created at start.
        theme: MonsterUI theme colour (``STARMODEL_THEME``).
        allowed_origins: extra origins allowed to call events besides the app's own
            (``STARMODEL_ALLOWED_ORIGINS``, comma separated).
        live_queue_size: messages a live stream may hold for a slow tab before it is dropped.
        live_heartbeat: seconds between keep-alive comments on idle live streams.
        live_replay: how many recent live messages are kept for tabs that reconnect.
        event_retries: how often a conflicting event is re-run before the caller gets a 409.
        store_timeout: seconds a store's server may stay silent before it counts as
            unreachable and calls that need it answer 503: a Redis command, a PostgreSQL
            handshake, or a PostgreSQL statement during which the server does not answer a
            probe either (a statement that waits for a row lock, while the server answers, may
            go on) (``STARMODEL_STORE_TIMEOUT``).
        bus_timeout: seconds publishing a fact on the Redis bus may take; past that the fact is
            delivered in this process only and other processes resync later
            (``STARMODEL_BUS_TIMEOUT``).
        probe_interval: seconds between checks of a server found unreachable; meanwhile calls
            that need it answer 503 at once, with this as ``Retry-After``
            (``STARMODEL_PROBE_INTERVAL``).
        shutdown_grace: seconds a stopping server lets running events and background runs
            finish (``STARMODEL_SHUTDOWN_GRACE``); background runs still going then are
            cancelled (their current step rolled back), open requests are ended.
        presence_ttl: seconds a tab counts as a viewer of an instance without a heartbeat of
            its server process: a process that dies loses its viewers after this, plus at most
            one ``presence_beat`` (``STARMODEL_PRESENCE_TTL``, default 15).
        presence_beat: seconds between a process's presence heartbeats, shorter than
            ``presence_ttl`` (``STARMODEL_PRESENCE_BEAT``, default 5).
        debug: show exception messages in error toasts (``STARMODEL_DEBUG``).
        log_format: ``text`` (default) or ``json``: one JSON object per log line, with a line
            per request and per event (``STARMODEL_LOG_FORMAT``; ``starmodel run --log-format``).
        metrics: serve Prometheus metrics at ``/_starmodel/metrics`` (``STARMODEL_METRICS``).
        metrics_token: when set, the metrics answer only requests carrying
            ``Authorization: Bearer <token>`` (``STARMODEL_METRICS_TOKEN``).
        tracing: an OpenTelemetry span per event, and per request (``STARMODEL_TRACING``;
            needs ``pip install 'starmodel[otel]'``).
        session_max_age: seconds a session cookie, and a sign-in of the auth plugin, lasts
            (``STARMODEL_SESSION_MAX_AGE``, default 14 days).
        trusted_proxies: addresses or networks of the reverse proxies whose
            ``X-Forwarded-Proto`` / ``X-Forwarded-For`` are believed
            (``STARMODEL_TRUSTED_PROXIES``, comma separated, e.g. ``127.0.0.1,10.0.0.0/8``;
            default: none).
        csp: the Content-Security-Policy of pages: ``default`` (one that works with Datastar,
            see docs/security.md), ``off``, or your own policy, where ``{nonce}`` stands for
            the page's nonce (``STARMODEL_CSP``).
        csp_report_only: send the policy as ``Content-Security-Policy-Report-Only``: the
            browser reports violations but blocks nothing (``STARMODEL_CSP_REPORT_ONLY``).
        hsts_max_age: ``Strict-Transport-Security`` max-age in seconds, sent on answers to
            https requests only; ``0`` sends none (``STARMODEL_HSTS_MAX_AGE``, default a year).
        files: where file fields keep their files: ``local`` (default: a directory) or the
            name of a ``starmodel.files`` plugin (``STARMODEL_FILES``).
        files_dir: the directory of the ``local`` file store (``STARMODEL_FILES_DIR``, default
            ``.starmodel/files``).
    """

    secret_key: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "sm"
    assets: str = "local"
    assets_dir: str = ".assets"
    cache_dir: str | None = None
    migrations_dir: str = "migrations"
    theme: str = "blue"
    allowed_origins: tuple[str, ...] = ()
    live_queue_size: int = 256
    live_heartbeat: float = 15.0
    live_replay: int = 1024
    event_retries: int = 8
    store_timeout: float = 1.5
    bus_timeout: float = 1.0
    probe_interval: float = 1.0
    shutdown_grace: float = 5.0
    presence_ttl: float = 15.0
    presence_beat: float = 5.0
    debug: bool = False
    log_format: str = "text"
    metrics: bool = False
    metrics_token: str | None = None
    tracing: bool = False
    session_max_age: int = 14 * 24 * 3600
    trusted_proxies: tuple[str, ...] = ()
    csp: str = "default"
    csp_report_only: bool = False
    hsts_max_age: int = 365 * 24 * 3600
    files: str = "local"
    files_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, kind in _TYPES.items():
            value = getattr(self, name)
            wrong_bool = isinstance(value, bool) and kind is not bool
            if value is not None and (not isinstance(value, kind) or wrong_bool):
                expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
                raise ConfigurationError(f"setting {name} must be {expected}, not {value!r}")
        if self.log_format not in ("text", "json"):
            raise ConfigurationError(f"log_format must be 'text' or 'json', not {self.log_format!r}")
        if self.assets not in ("cdn", "local"):
            raise ConfigurationError(f"assets must be 'cdn' or 'local', not {self.assets!r}")
        for name in ("live_queue_size", "live_replay", "event_retries"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1")
        if not self.redis_prefix or any(c.isspace() or c in "*?[]{}" for c in self.redis_prefix):
            raise ConfigurationError(
                f"redis_prefix must be a word without spaces or glob characters, not {self.redis_prefix!r}"
            )
        if self.session_max_age < 1:
            raise ConfigurationError("session_max_age must be at least 1 second")
        if self.hsts_max_age < 0:
            raise ConfigurationError("hsts_max_age must be 0 (no HSTS) or more seconds")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigurationError(
                    f"trusted_proxies: {proxy!r} is not an IP address or network (e.g. 10.0.0.0/8)"
                ) from None
        if not self.csp.strip() or not self.csp.isascii() or any(c in self.csp for c in "\r\n"):
            raise ConfigurationError("csp must be 'default', 'off' or a policy on one line")
        for name in ("live_heartbeat", *_SECONDS):
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigurationError(f"{name} must be a positive number of seconds")
        if self.presence_beat >= self.presence_ttl:
            raise ConfigurationError("presence_beat must be shorter than presence_ttl")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the environment, then apply ``overrides`` (``None`` values are ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        simple = {
            "secret_key": "SECRET_KEY",
            "database_url": "DATABASE_URL",
            "redis_url": "REDIS_URL",
            "redis_prefix": "STARMODEL_REDIS_PREFIX",
            "assets": "STARMODEL_ASSETS",
            "assets_dir": "STARMODEL_ASSETS_DIR",
            "cache_dir": "STARMODEL_CACHE_DIR",
            "migrations_dir": "STARMODEL_MIGRATIONS_DIR",
            "theme": "STARMODEL_THEME",
            "log_format": "STARMODEL_LOG_FORMAT",
            "metrics_token": "STARMODEL_METRICS_TOKEN",
            "files": "STARMODEL_FILES",
            "files_dir": "STARMODEL_FILES_DIR",
        }
        for attr, var in simple.items():
            if env.get(var):
                values[attr] = env[var]
        if "log_format" in values:
            values["log_format"] = values["log_format"].strip().lower()
        for attr, var in (("debug", "STARMODEL_DEBUG"), ("csp_report_only", "STARMODEL_CSP_REPORT_ONLY"),
                          ("metrics", "STARMODEL_METRICS"), ("tracing", "STARMODEL_TRACING")):
            if var in env:
                values[attr] = _parse_bool(var, env[var])
        whole = {"session_max_age": "STARMODEL_SESSION_MAX_AGE", "hsts_max_age": "STARMODEL_HSTS_MAX_AGE"}
        for attr, var in whole.items():
            if env.get(var):
                values[attr] = _parse_whole(var, env[var])
        if env.get("STARMODEL_CSP"):
            values["csp"] = env["STARMODEL_CSP"].strip()
        if "STARMODEL_TRUSTED_PROXIES" in env:
            proxies = env["STARMODEL_TRUSTED_PROXIES"].split(",")
            values["trusted_proxies"] = tuple(p.strip() for p in proxies if p.strip())
        for attr, var in _SECONDS.items():
            if env.get(var):
                values[attr] = _parse_seconds(var, env[var])
        if env.get("STARMODEL_ALLOWED_ORIGINS"):
            origins = env["STARMODEL_ALLOWED_ORIGINS"].split(",")
            values["allowed_origins"] = tuple(o.strip().rstrip("/") for o in origins if o.strip())
        known = {f.name for f in fields(cls)}
        for key, value in overrides.items():
            if key not in known or key.startswith("_"):
                raise ConfigurationError(f"unknown setting {key!r}")
            if value is not None:
                values[key] = value
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


_TYPES: dict[str, type | tuple[type, ...]] = {
    "secret_key": str,
    "database_url": str,
    "redis_url": str,
    "redis_prefix": str,
    "assets": str,
    "assets_dir": str,
    "cache_dir": str,
    "migrations_dir": str,
    "theme": str,
    "files": str,
    "files_dir": str,
    "allowed_origins": tuple,
    "live_queue_size": int,
    "live_heartbeat": (int, float),
    "live_replay": int,
    "event_retries": int,
    "store_timeout": (int, float),
    "bus_timeout": (int, float),
    "probe_interval": (int, float),
    "shutdown_grace": (int, float),
    "presence_ttl": (int, float),
    "presence_beat": (int, float),
    "debug": bool,
    "log_format": str,
    "metrics": bool,
    "metrics_token": str,
    "tracing": bool,
    "session_max_age": int,
    "trusted_proxies": tuple,
    "csp": str,
    "csp_report_only": bool,
    "hsts_max_age": int,
}
_SECONDS = {
    "store_timeout": "STARMODEL_STORE_TIMEOUT",
    "bus_timeout": "STARMODEL_BUS_TIMEOUT",
    "probe_interval": "STARMODEL_PROBE_INTERVAL",
    "shutdown_grace": "STARMODEL_SHUTDOWN_GRACE",
    "presence_ttl": "STARMODEL_PRESENCE_TTL",
    "presence_beat": "STARMODEL_PRESENCE_BEAT",
}


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false, not {raw!r}")


def _parse_whole(name: str, raw: str) -> int:
    text = raw.strip()
    if not text.isdigit() or len(text) > 12:
        raise ConfigurationError(f"{name} must be a whole number of seconds, not {raw!r}")
    return int(text)


def _parse_seconds(name: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise ConfigurationError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value
