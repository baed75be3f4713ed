import sys
from pathlib import Path

import pytest

# the HTTP helpers of tests/http (sm_http) serve these tests too
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(clean_settings_env: None) -> None:
    """Tests here build their settings explicitly."""
