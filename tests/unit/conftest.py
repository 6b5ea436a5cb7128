"""Fixtures shared by the unit tests."""
from __future__ import annotations

import pytest

from maip_events import settings


@pytest.fixture
def deployed(monkeypatch):
    """Settings as deployed (not the local stack): MAIP_LOCAL unset, settings re-read before and after."""
    monkeypatch.delenv("MAIP_LOCAL", raising=False)
    settings.reset()
    yield
    settings.reset()
