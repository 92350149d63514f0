"""The scale tests' test-only methods, registered for each test and removed after it."""

from __future__ import annotations

import pytest

from .helpers import TEST_METHODS


@pytest.fixture(autouse=True)
def _scale_test_methods(register_methods):
    register_methods(*TEST_METHODS)
