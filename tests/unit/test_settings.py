"""Settings from the environment and from overrides."""

import pytest

from starmodel import ConfigurationError, Settings


def test_defaults_without_environment():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.secret_key is None
    assert settings.assets == "local"  # the app serves its page assets; a CDN is the option
    assert settings.cache_dir is None
    assert settings.debug is False


def test_environment_is_read():
    settings = Settings.from_env(
        {
            "SECRET_KEY": "s3cret",
            "DATABASE_URL": "sqlite:///x.db",
            "REDIS_URL": "redis://localhost:6379/0",
            "STARMODEL_ASSETS": "cdn",
            "STARMODEL_ASSETS_DIR": "/srv/assets",
            "STARMODEL_CACHE_DIR": "/var/cache/sm",
            "STARMODEL_THEME": "rose",
            "STARMODEL_DEBUG": "Yes",
            "STARMODEL_ALLOWED_ORIGINS": " https://a.example/ ,https://b.example,, ",
        }
    )
    assert settings.secret_key == "s3cret"
    assert settings.database_url == "sqlite:///x.db"
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.assets == "cdn"
    assert settings.assets_dir == "/srv/assets"
    assert settings.cache_dir == "/var/cache/sm"
    assert settings.theme == "rose"
    assert settings.debug is True
    assert settings.allowed_origins == ("https://a.example", "https://b.example")


def test_process_environment_is_the_default(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-os")
    assert Settings.from_env().secret_key == "from-os"


def test_empty_variables_count_as_unset():
    assert Settings.from_env({"SECRET_KEY": "", "STARMODEL_ASSETS": ""}) == Settings()


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("on", True), ("0", False), ("off", False)])
def test_debug_flag_values(raw, value):
    assert Settings.from_env({"STARMODEL_DEBUG": raw}).debug is value


def test_bad_debug_flag_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="STARMODEL_DEBUG"):
        Settings.from_env({"STARMODEL_DEBUG": "maybe"})


def test_bad_assets_mode_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="assets"):
        Settings.from_env({"STARMODEL_ASSETS": "ftp"})


def test_overrides_win_over_environment_and_none_is_ignored():
    settings = Settings.from_env({"SECRET_KEY": "env"}, secret_key="arg", redis_url=None)
    assert settings.secret_key == "arg"
    assert settings.redis_url is None


def test_unknown_override_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="secret"):
        Settings.from_env({}, secret="typo")


@pytest.mark.parametrize(
    "override",
    [
        {"live_queue_size": 0},
        {"live_replay": -1},
        {"event_retries": 0},
        {"live_heartbeat": 0},
    ],
)
def test_out_of_range_overrides_are_configuration_errors(override):
    with pytest.raises(ConfigurationError):
        Settings.from_env({}, **override)


def test_override_of_the_wrong_type_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="live_queue_size"):
        Settings.from_env({}, live_queue_size="many")


def test_with_returns_a_changed_copy():
    base = Settings()
    changed = base.with_(theme="rose")
    assert changed.theme == "rose"
    assert base.theme == "blue"
