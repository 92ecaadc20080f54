"""Generic test fixtures shared by every test directory. Keep this small."""
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # run from anywhere without installing the package
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def rng():
    """A seeded numpy generator, so random test data is the same on every run."""
    return np.random.default_rng(12345)


def pytest_configure(config):
    config.addinivalue_line("markers", "linter: lint and type checks (ruff, mypy), test/test_lint.py")
