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


@pytest.fixture(autouse=True)
def no_modal_dialogs(request, monkeypatch):
    """A modal question would wait for a click forever under Xvfb: every question the Repair
    widget asks unexpectedly is recorded in ``questions`` and answered "no" / "cancel".
    Tests that expect a question set ``widget.confirm`` / ``widget.ask`` themselves."""
    questions = []
    if "gui" in request.keywords:
        from napari_flowinpaint.gui._widget import RepairWidget

        monkeypatch.setattr(RepairWidget, "_confirm_dialog",
                            lambda self, q: questions.append(q) or False)
        monkeypatch.setattr(RepairWidget, "_ask_dialog",
                            lambda self, q: questions.append(q) or "cancel")
    return questions
