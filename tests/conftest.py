"""Fixtures shared by the GUI tests."""

import pytest


@pytest.fixture
def notes():
    """Every napari notification shown during the test, as (severity, message)."""
    pytest.importorskip("napari")
    from napari.utils.notifications import notification_manager

    seen = []

    def record(note):
        seen.append((note.severity, str(note.message)))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)
