import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TestEnv  # noqa: E402


@pytest.fixture
def env():
    e = TestEnv()
    yield e
    e.close()
