"""Fixtures shared by the families plugin's vision-language tests."""

from __future__ import annotations

import pytest
from omni.testing.synthetic import write_shapes


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """A small coloured-shapes set: 8 training and 8 held-out image rows."""
    return write_shapes(tmp_path_factory.mktemp("shapes"), train=8, held_out=8)
