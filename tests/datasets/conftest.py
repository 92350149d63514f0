"""Fixture: a real HTTP file server on 127.0.0.1 (see ``_helpers.FileServer``)."""

from __future__ import annotations

import pytest

from ._helpers import FileServer


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    srv = FileServer(root)
    yield srv
    srv.close()
