"""Shared fixtures."""

import pytest

SETTINGS_VARS = (
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "STARMODEL_REDIS_PREFIX",
    "STARMODEL_ASSETS",
    "STARMODEL_ASSETS_DIR",
    "STARMODEL_THEME",
    "STARMODEL_DEBUG",
    "STARMODEL_ALLOWED_ORIGINS",
    "STARMODEL_MIGRATIONS_DIR",
    "STARMODEL_STORE_TIMEOUT",
    "STARMODEL_BUS_TIMEOUT",
    "STARMODEL_PROBE_INTERVAL",
    "STARMODEL_SHUTDOWN_GRACE",
    "STARMODEL_PRESENCE_TTL",
    "STARMODEL_PRESENCE_BEAT",
    "STARMODEL_APP",
    "STARMODEL_LOG_FORMAT",
    "STARMODEL_METRICS",
    "STARMODEL_METRICS_TOKEN",
    "STARMODEL_TRACING",
    "PROMETHEUS_MULTIPROC_DIR",
    "STARMODEL_SESSION_MAX_AGE",
    "STARMODEL_TRUSTED_PROXIES",
    "STARMODEL_CSP",
    "STARMODEL_CSP_REPORT_ONLY",
    "STARMODEL_HSTS_MAX_AGE",
    "STARMODEL_FILES",
    "STARMODEL_FILES_DIR",
)


@pytest.fixture
def clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read os.environ: remove every variable they know, for this test only."""
    for name in SETTINGS_VARS:
        monkeypatch.delenv(name, raising=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's sync API keeps an event loop running in this
    thread while its browser is open, and asyncio tests cannot start theirs after that."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
