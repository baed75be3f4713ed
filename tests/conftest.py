"""Shared fixtures."""

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


@pytest.fixture
def clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read os.environ: remove every variable they know, for this test only."""
    for name in SETTINGS_VARS:
        monkeypatch.delenv(name, raising=False)
