"""omni.progress: live bars on a terminal, plain rate-limited lines in a log, nothing when quiet."""

import io

import pytest

from omni import progress
from omni.progress import LogLines, progress_bar, set_quiet


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def loud(monkeypatch):
    monkeypatch.delenv(progress.QUIET_ENV, raising=False)
    monkeypatch.setattr(progress, "_quiet", False)


def test_log_file_gets_whole_lines_not_carriage_return_frames():
    log = io.StringIO()
    bar = progress_bar(range(50), desc="convert", file=log, every=0.0)
    assert isinstance(bar, LogLines)
    for _ in bar:
        bar.set_postfix_str("x")
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text, repr(text[:200])
    lines = text.splitlines()
    assert len(lines) >= 50 and all(ln.startswith("convert:") for ln in lines), lines[:3]
    assert "50/50" in lines[-1]


def test_log_lines_are_rate_limited_with_a_first_and_a_last_line():
    log = io.StringIO()
    bar = progress_bar(total=1000, desc="train", file=log, every=3600.0, leave=False)
    for _ in range(1000):
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert "0/1000" in lines[0] and "1000/1000" in lines[1]


def test_terminal_gets_the_live_bar():
    tty = Tty()
    bar = progress_bar(total=3, desc="live", file=tty)
    assert not isinstance(bar, LogLines)
    bar.update(3)
    bar.close()
    assert "\r" in tty.getvalue()


def test_quiet_and_disabled_bars_print_nothing(monkeypatch):
    log, tty = io.StringIO(), Tty()
    for _ in progress_bar(range(5), desc="off", file=log, enabled=False):
        pass
    set_quiet(True)
    try:
        assert progress.is_quiet()
        for _ in progress_bar(range(5), desc="quiet", file=tty):
            pass
    finally:
        set_quiet(False)
    assert log.getvalue() == "" and tty.getvalue() == ""
    assert not progress.is_quiet()
