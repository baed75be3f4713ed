"""The timeouts settings: how long a store or the bus may take before the service counts as away."""

import pytest

from starmodel import ConfigurationError, Settings


def test_defaults_are_short():
    settings = Settings()
    assert (settings.store_timeout, settings.bus_timeout, settings.probe_interval) == (1.5, 1.0, 1.0)


def test_the_environment_sets_them():
    settings = Settings.from_env(
        {"STARMODEL_STORE_TIMEOUT": "2", "STARMODEL_BUS_TIMEOUT": " 0.5 ", "STARMODEL_PROBE_INTERVAL": "3.5"}
    )
    assert (settings.store_timeout, settings.bus_timeout, settings.probe_interval) == (2.0, 0.5, 3.5)


VARIABLES = ["STARMODEL_STORE_TIMEOUT", "STARMODEL_BUS_TIMEOUT", "STARMODEL_PROBE_INTERVAL"]


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "nan", "inf", "1e999"])
@pytest.mark.parametrize("variable", VARIABLES)
def test_a_value_that_is_not_a_positive_number_of_seconds_is_one_clear_error(variable, raw):
    with pytest.raises(ConfigurationError, match=f"{variable} must be a positive number of seconds"):
        Settings.from_env({variable: raw})


@pytest.mark.parametrize("name", ["store_timeout", "bus_timeout", "probe_interval"])
@pytest.mark.parametrize("value", [0, -2.5, float("inf"), "1", True])
def test_a_wrong_argument_is_one_clear_error(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({}, **{name: value})
