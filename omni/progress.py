"""Progress bars that suit both a terminal and a log file; every bar in omni comes from here.

    from omni.progress import progress_bar
    for item in progress_bar(items, desc="convert audio"):
        ...

Three behaviours, chosen once per bar from where it writes (standard error):

* a **terminal**: tqdm's live bar, redrawn in place with carriage returns;
* **not a terminal** (a CI log, ``make demo > log 2>&1``, a pipe): one plain
  line at the start, then at most one every :data:`LOG_EVERY_S` seconds, and a
  last one when the bar closes — never ``\\r`` frames or cursor moves, so a log
  holds a few readable lines instead of thousands of repeated frames;
* **quiet** (``omni --quiet ...``, ``train/<stage>.py --quiet``, or the
  environment variable ``OMNI_QUIET=1``): no bar at all. Messages printed with
  :func:`write` still appear.
"""

from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm

LOG_EVERY_S = 5.0             # seconds between two plain progress lines when stderr is not a terminal
QUIET_ENV = "OMNI_QUIET"

_quiet = False


def set_quiet(quiet: bool = True) -> None:
    """Turn every progress bar of this process off (``--quiet``); child processes inherit it through the env."""
    global _quiet
    _quiet = quiet
    if quiet:
        os.environ[QUIET_ENV] = "1"
    else:
        os.environ.pop(QUIET_ENV, None)


def is_quiet() -> bool:
    return _quiet or os.environ.get(QUIET_ENV, "") not in ("", "0")


class LogLines(tqdm):
    """A tqdm bar for a log: each display is one whole line, at most every ``every`` seconds.

    tqdm asks to redraw on every ``update`` / ``set_postfix``; this class
    drops the redraws that come sooner than ``every`` seconds after the last
    line, and never clears or moves the cursor.
    """

    def __init__(self, *args, every: float = LOG_EVERY_S, **kwargs):
        self.every, self._last_line, self._last_n = every, -float("inf"), None
        super().__init__(*args, ascii=True, **kwargs)

    def display(self, msg=None, pos=None, final: bool = False):
        if msg == "":                          # tqdm clearing a bar that closes with leave=False
            return False
        now = time.monotonic()
        if not final and now - self._last_line < self.every:
            return True
        self._last_line, self._last_n = now, self.n
        self.fp.write(self.__str__() + "\n")
        getattr(self.fp, "flush", lambda: None)()
        return True

    def clear(self, nolock=False):             # a log line stays; nothing to erase
        pass

    def moveto(self, n):                       # nested bars simply print in turn
        pass

    def close(self):
        if self.disable:
            return
        if self._last_n != self.n:             # the last state, unless it is the line already printed
            self.display(final=True)
        self.disable = True
        self._decr_instances(self)


def progress_bar(iterable=None, *, desc: str | None = None, total: int | None = None, initial: int = 0,
                 enabled: bool = True, leave: bool = True, file=None, every: float = LOG_EVERY_S, **kwargs):
    """A tqdm bar (iterate it, or call ``update``) that is live on a terminal, plain lines in a log,
    and off when ``enabled`` is false or the process is quiet."""
    file = sys.stderr if file is None else file
    common = dict(desc=desc, total=total, initial=initial, leave=leave, file=file, **kwargs)
    if not enabled or is_quiet():
        return tqdm(iterable, disable=True, **common)
    if getattr(file, "isatty", lambda: False)():
        return tqdm(iterable, dynamic_ncols=True, **common)
    return LogLines(iterable, every=every, **common)


def write(msg: str) -> None:
    """Print a message to stdout without breaking a live bar."""
    tqdm.write(msg)
