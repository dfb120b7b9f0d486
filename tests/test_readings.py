"""dlbio_teach.readings: a reading of the committed outputs, strict where the book is made."""
from __future__ import annotations

import pytest

from dlbio_teach.readings import STRICT_READINGS, reading


def test_a_reading_that_holds_is_silent(monkeypatch, capsys):
    monkeypatch.setenv(STRICT_READINGS, "1")
    assert reading(True, "F1 falls") is True
    assert capsys.readouterr().out == ""


def test_where_the_book_is_made_a_false_reading_stops_the_run(monkeypatch):
    monkeypatch.setenv(STRICT_READINGS, "1")
    with pytest.raises(AssertionError, match='the text says "F1 falls at every step"'):
        reading(False, "F1 falls at every step")


@pytest.mark.parametrize("value", [None, "0", ""])
def test_elsewhere_a_false_reading_is_a_note(monkeypatch, capsys, value):
    if value is None:
        monkeypatch.delenv(STRICT_READINGS, raising=False)
    else:
        monkeypatch.setenv(STRICT_READINGS, value)
    assert reading(False, "F1 falls at every step") is False
    out = capsys.readouterr().out
    assert out.startswith('Note: the text says "F1 falls at every step"')
    assert "another CPU, a GPU" in out


def test_numpy_booleans_are_read_as_booleans(monkeypatch):
    np = pytest.importorskip("numpy")
    monkeypatch.setenv(STRICT_READINGS, "1")
    assert reading(np.float64(0.9) > 0.8, "higher") is True
    with pytest.raises(AssertionError):
        reading(np.float64(0.7) > 0.8, "higher")
