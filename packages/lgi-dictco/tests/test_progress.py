"""lgi_dictco.progress.StageProgress: the overall fraction, the ETA, plain lines off a terminal, the bar on one."""

from __future__ import annotations

import io

import pytest

from lgi_dictco.progress import StageProgress, format_seconds

STAGES = (("load", 1.0), ("fit", 8.0), ("write", 1.0))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _plain(**kwargs):
    stream, clock = io.StringIO(), Clock()
    return StageProgress("lgi fit", STAGES, stream=stream, tty=False, clock=clock, **kwargs), stream, clock


def test_overall_fraction_follows_the_weights():
    progress, _, _ = _plain()
    assert progress.overall == 0.0
    progress.update("load")
    assert progress.overall == 0.0
    progress.update("fit", 0.5)
    assert progress.overall == pytest.approx(0.1 + 0.8 * 0.5)
    progress.update("write", 1.0)
    assert progress.overall == pytest.approx(1.0)
    progress.update("fit", 7.0)  # clipped into the stage
    assert progress.overall == pytest.approx(0.9)


def test_eta_extrapolates_the_current_stage_and_carries_over_to_silent_ones():
    progress, _, clock = _plain()
    progress.update("load")
    clock.now += 30.0  # a slow start (a kernel build) must not enter the fit's ETA
    progress.update("fit", 0.0)
    assert progress.eta() is None  # nothing measured yet
    clock.now += 10.0
    progress.update("fit", 0.25)
    # 10 s per quarter of the fit: 30 s for the rest of it, and write (1/8 of the fit's weight) 5 s.
    assert progress.eta() == pytest.approx(30.0 + 5.0)
    clock.now += 30.0
    progress.update("write")  # reports no fractions: the last rate, less the time it has run
    assert progress.eta() == pytest.approx(5.0)
    clock.now += 2.0
    assert progress.eta() == pytest.approx(3.0)
    clock.now += 10.0
    assert progress.eta() == 0.0


def test_eta_leaves_out_a_slow_first_step():
    progress, _, clock = _plain()
    progress.update("fit", 0.0)
    clock.now += 180.0  # the first steps wait for a kernel build
    progress.update("fit", 0.05)
    assert progress.eta() == pytest.approx(180.0 / 0.05 * (0.95 + 0.125))  # nothing better known yet
    clock.now += 10.0
    progress.update("fit", 0.15)
    # From then on, 10 s per tenth of the fit: 85 s for the rest of it, 12.5 s for write.
    assert progress.eta() == pytest.approx(85.0 + 12.5)


def test_eta_of_a_resumed_stage_counts_only_progress_made_here():
    progress, _, clock = _plain()
    progress.update("fit", 0.5)  # a resumed fit starts half done
    clock.now += 10.0
    progress.update("fit", 0.75)
    assert progress.eta() == pytest.approx(10.0 + 5.0)


def test_plain_lines_at_each_stage_and_every_interval():
    progress, stream, clock = _plain(interval=10.0)
    with progress:
        progress.update("load")
        clock.now += 1.0
        progress.update("fit", 0.0, "step 0/100")
        for step in range(1, 101):
            clock.now += 0.5
            progress.update("fit", step / 100, f"step {step}/100")
        progress.update("write")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "lgi fit: load   0%, 0.0 s elapsed"
    assert lines[1] == "lgi fit: fit  10% (step 0/100), 1.0 s elapsed"
    # 50 s of fit steps: a line every 10 s, not one per step.
    fit_lines = [line for line in lines if line.startswith("lgi fit: fit ")]
    assert len(fit_lines) == 6
    assert fit_lines[1] == "lgi fit: fit  26% (step 20/100), 11 s elapsed, ETA 46 s"  # 40 s of fit, 6 s of write
    assert lines[-2].startswith("lgi fit: write  90%, 51 s elapsed, ETA 6")
    assert lines[-1] == "lgi fit: done in 51 s"  # __exit__ finishes once
    assert "\r" not in stream.getvalue()


def test_quiet_writes_nothing_and_unknown_stages_are_refused():
    stream = io.StringIO()
    with StageProgress("x", STAGES, quiet=True, stream=stream, tty=False) as progress:
        progress.update("fit", 0.5)
        with pytest.raises(ValueError, match="unknown stage 'encode'; declared: load, fit, write"):
            progress.update("encode")
    assert stream.getvalue() == ""
    with pytest.raises(ValueError, match="at least one stage"):
        StageProgress("x", ())
    with pytest.raises(ValueError, match="weights"):
        StageProgress("x", (("a", 0.0),))


def test_a_terminal_gets_one_bar_with_stage_and_eta():
    stream, clock = io.StringIO(), Clock()
    with StageProgress("lgi fit", STAGES, stream=stream, tty=True, clock=clock) as progress:
        progress.update("fit", 0.0)
        clock.now += 4.0
        progress.update("fit", 0.5, "step 50/100")
    out = stream.getvalue()
    assert "lgi fit" in out and "fit" in out and "step 50/100" in out
    assert "ETA" in out and "\x1b[" in out  # a live (ANSI) bar, not plain lines
    assert "done in" not in out


@pytest.mark.parametrize("seconds,text", [(0.04, "0.0 s"), (9.94, "9.9 s"), (42.4, "42 s"), (185, "3 min 05 s"),
                                          (3720, "1 h 02 min"), (-1, "0.0 s")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
