"""One progress display for the long LGI commands (``lgi fit``; meant for ``lgi encode`` too).

A run is a list of named stages, each with a weight: its expected share of the time. The display is
one overall bar for the whole run, naming the current stage, with elapsed time and an ETA. It always
goes to stderr, so that ``--json`` output on stdout stays parseable and progress stays visible under
``--json``; ``quiet`` turns it off. On a terminal it is a rich bar; elsewhere (a log file, a CI job,
a pipe) it writes one plain line when a stage starts and one every ``interval`` seconds within a
stage, so a long run is never silent and a log is never flooded.

It lives beside :mod:`lgi_dictco.clitools` for the same reason: lgi-dictco is the lowest package that
both lgi-train and lgi depend on. Only the standard library is imported at module level (rich loads
when a terminal bar is drawn), so importing it keeps ``lgi --help`` fast.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import IO

__all__ = ["StageProgress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s`` or ``1 h 02 min``: a duration a person reads at a glance."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class StageProgress:
    """An overall progress bar over weighted stages, with the stage's name and an ETA, on stderr.

    Args:
        label: what runs, e.g. ``"lgi fit"`` (starts every plain line).
        stages: ``(name, weight)`` in the order they run; weights are the expected shares of the
            time (normalized here). A stage that is skipped is simply never entered.
        quiet: show nothing.
        stream: where to write (default ``sys.stderr``).
        tty: draw a live bar (True) or write plain lines (False); default: whether ``stream`` is a
            terminal.
        interval: seconds between plain lines within one stage.
        clock: a monotonic clock in seconds (tests pass a fake one).

    Use as a context manager; call :meth:`update` with a stage name and the fraction of that stage
    done (0 when it starts). The ETA extrapolates the current stage's own rate, measured from its
    first reported progress, so neither a slow earlier stage nor a slow first step (a kernel build)
    distorts it; before a stage has measured progress the ETA shows as unknown.
    """

    def __init__(self, label: str, stages: Sequence[tuple[str, float]], *, quiet: bool = False,
                 stream: IO[str] | None = None, tty: bool | None = None, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        if not stages:
            raise ValueError("StageProgress needs at least one stage")
        total = float(sum(w for _, w in stages))
        if not total > 0 or any(w < 0 for _, w in stages):
            raise ValueError("stage weights must be >= 0 with a positive sum")
        self.label = label
        self.names = [name for name, _ in stages]
        self.weights = {name: w / total for name, w in stages}
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.interval = interval
        self.clock = clock
        self.stage: str | None = None
        self.fraction = 0.0
        self.detail = ""
        self._t0 = clock()
        self._stage_t0 = self._t0
        self._stage_f0 = 0.0
        self._anchor: tuple[float, float] | None = None  # (time, fraction) of the stage's first progress
        self._last_line = -float("inf")
        self._bar = None
        self._task = None
        self._finished = False
        self._per_weight: float | None = None  # seconds per unit of weight, last measured

    # --- what is shown ---------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return self.clock() - self._t0

    @property
    def overall(self) -> float:
        """The fraction of the whole run done, in [0, 1]."""
        if self.stage is None:
            return 0.0
        i = self.names.index(self.stage)
        done = sum(self.weights[n] for n in self.names[:i])
        return min(1.0, done + self.weights[self.stage] * self.fraction)

    def eta(self) -> float | None:
        """Seconds left: the current stage's rate applied to what remains of it and of the stages
        after it (by weight). A stage that reports no fractions (or has not yet) uses the rate last
        measured, less the time it has run; None before any stage has measured progress."""
        if self.stage is None:
            return None
        # Measure from the stage's first reported progress when there is more since: its first steps
        # carry one-off costs (a kernel build, allocator warm-up) that the rest will not repeat.
        t0, f0 = self._stage_t0, self._stage_f0
        if self._anchor is not None and self.fraction > self._anchor[1]:
            t0, f0 = self._anchor
        progressed = self.fraction - f0
        spent = self.clock() - t0
        weight = self.weights[self.stage]
        remaining = weight * (1.0 - self.fraction) + sum(
            self.weights[n] for n in self.names[self.names.index(self.stage) + 1:])
        if progressed > 1e-9 and spent > 0 and weight > 0:
            self._per_weight = spent / (progressed * weight)
            return self._per_weight * remaining
        if self._per_weight is None:
            return None
        return max(0.0, self._per_weight * remaining - spent)

    def line(self) -> str:
        """The plain line for the current state (what a non-terminal run logs)."""
        eta = self.eta()
        detail = f" ({self.detail})" if self.detail else ""
        eta_text = f", ETA {format_seconds(eta)}" if eta is not None else ""
        return (f"{self.label}: {self.stage} {100 * self.overall:3.0f}%{detail}, "
                f"{format_seconds(self.elapsed)} elapsed{eta_text}")

    # --- driving it ------------------------------------------------------------------------------

    def update(self, stage: str, fraction: float = 0.0, detail: str = "") -> None:
        """Report that ``stage`` is ``fraction`` done (clipped to [0, 1]); ``detail`` is shown beside it.

        Raises:
            ValueError: a stage that was not declared.
        """
        if stage not in self.weights:
            raise ValueError(f"unknown stage {stage!r}; declared: {', '.join(self.names)}")
        fraction = min(1.0, max(0.0, float(fraction)))
        new_stage = stage != self.stage
        now = self.clock()
        if new_stage:
            self.stage, self._stage_t0, self._stage_f0, self._anchor = stage, now, fraction, None
        elif self._anchor is None and fraction > self._stage_f0:
            self._anchor = (now, fraction)
        self.fraction, self.detail = fraction, detail
        if self.quiet:
            return
        if self.tty:
            self._draw()
        elif new_stage or now - self._last_line >= self.interval:
            self._last_line = now
            self._write(self.line())

    def finish(self, message: str | None = None) -> None:
        """Close the bar (complete) and, off a terminal, log ``message`` or the total time (once)."""
        if self.quiet or self._finished:
            return
        self._finished = True
        if self._bar is not None:
            self._bar.update(self._task, completed=1.0, eta="0 s")
            self._bar.stop()
            self._bar = None
        if not self.tty:
            self._write(message or f"{self.label}: done in {format_seconds(self.elapsed)}")

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
        elif self._bar is not None:  # a failure: leave the bar where it stopped, then the error line
            self._bar.stop()
            self._bar = None

    def _write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def _draw(self) -> None:
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

            console = Console(file=self.stream, force_terminal=True, highlight=False)
            self._bar = Progress(TextColumn(f"{self.label}"), TextColumn("[bold]{task.fields[stage]:<8}"),
                                 BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[detail]}"),
                                 TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                                 console=console, transient=False)
            self._task = self._bar.add_task(self.label, total=1.0, stage="", detail="", eta="…")
            self._bar.start()
        eta = self.eta()
        self._bar.update(self._task, completed=self.overall, stage=self.stage, detail=self.detail,
                         eta=format_seconds(eta) if eta is not None else "…")
