"""Shared fixtures: every test starts from an environment without StarModel settings."""

import pytest

SETTINGS_VARS = (
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "STARMODEL_ASSETS",
    "STARMODEL_ASSETS_DIR",
    "STARMODEL_THEME",
    "STARMODEL_DEBUG",
    "STARMODEL_ALLOWED_ORIGINS",
)


@pytest.fixture(autouse=True)
def _clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read os.environ; a developer's shell must not change what tests see."""
    for name in SETTINGS_VARS:
        monkeypatch.delenv(name, raising=False)
