"""Test helpers for StarModel apps and stores (imports pytest: use it from tests only).

- ``RepositoryContract``: the contract suite every ``EntityRepository`` passes; subclass it
  in a test module to check a persistence plugin (see ``starmodel.testing.contract``).
"""

import pytest

# failed checks of the suite show the compared values, as in the plugin's own tests
pytest.register_assert_rewrite("starmodel.testing.contract")

from starmodel.testing.contract import RepositoryContract, RepositoryFactory  # noqa: E402

__all__ = ["RepositoryContract", "RepositoryFactory"]
