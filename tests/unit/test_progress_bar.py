"""The command line's progress bar (tqdm): redrawn on a terminal, one summary line on a pipe."""
from __future__ import annotations

import io

from lucent_admin.operations.cli import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_throttled_on_a_terminal_and_silent_on_a_pipe() -> None:
    screen = Terminal()
    bar = ProgressBar(1000, "simulate", screen)
    for done in range(1, 1001):
        bar.update_to(done)
    bar.close()
    assert screen.getvalue().count("\r") <= 10  # a tight loop of 1,000 updates: a few redraws, not 1,000
    assert "1000/1000" in screen.getvalue() and "events/s" in screen.getvalue()
    pipe = io.StringIO()
    quiet = ProgressBar(None, "live", pipe)
    quiet.update_to(5)
    assert pipe.getvalue() == ""
    quiet.close()
    assert pipe.getvalue().startswith("live: 5 events") and pipe.getvalue().count("\n") == 1


def test_a_bar_with_a_total_shows_the_eta() -> None:
    pipe = io.StringIO()
    bar = ProgressBar(10, "simulate", pipe)
    bar.update_to(4)
    bar.close()
    assert "4/10" in pipe.getvalue() and "<" in pipe.getvalue()  # tqdm's "elapsed<remaining"
