"""The kit's fixtures come from the ``starmodel`` pytest plugin (an entry point of the
installed package); a checkout that is not installed gets them registered here."""

import pytest

import starmodel.testing.plugin as plugin


def pytest_configure(config: pytest.Config) -> None:
    manager = config.pluginmanager
    if not manager.is_registered(plugin) and not manager.is_blocked("starmodel"):
        manager.register(plugin, "starmodel-testing")
