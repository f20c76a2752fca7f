"""archsearch.errors.first_line: the one-line name of a failure that every layer prints."""

import sqlalchemy as sa

from archsearch.errors import first_line


def test_an_exception_gives_its_first_line_or_its_type():
    assert first_line(ValueError("the first line\nthe rest")) == "the first line"
    assert first_line(ValueError("  \n padded \n")) == "padded"
    assert first_line(KeyError()) == "KeyError"


def test_a_wrapped_driver_error_gives_the_drivers_own_message():
    err = sa.exc.OperationalError("SELECT 1", {}, RuntimeError("could not connect to server\nIs it running?"))
    assert first_line(err) == "could not connect to server"
    assert first_line(sa.exc.OperationalError("SELECT 1", {}, RuntimeError())) == "RuntimeError"


def test_stored_text_and_the_limit():
    assert first_line("Traceback (most recent call last):\n  File ...") == "Traceback (most recent call last):"
    assert first_line("   ") == ""
    cut = first_line("x" * 300, 200)
    assert len(cut) == 200 and cut.endswith("…") and cut[:199] == "x" * 199
    assert first_line("x" * 200, 200) == "x" * 200
