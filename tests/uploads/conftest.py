import pytest


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(clean_settings_env: None) -> None:
    """Tests here build their settings explicitly; the developer's environment must not leak in."""
