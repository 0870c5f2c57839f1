"""How the encoder spends its effort: one frozen, named tuning per effort level.

A :class:`Tuning` is the whole recipe of an encode apart from what the user asked for (the rate,
the effort's name, the device, the seed: :class:`~lgi_train.encode.options.Options`). Its fit and its
fine-tuning are plans: tuples of :class:`Phase`, each a number of steps at one resolution with its
learning rates, run one after the other by one loop (:mod:`.fitting`, :mod:`.finetune`). Benchmarks
override a field with ``dataclasses.replace``; the measurements behind the values are in
docs/encoder.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from lgi_train.compress.codec import CodecSettings

#: The parameter groups a fit phase can train.
GROUPS = ("xy", "log_scale", "rotation", "color")


@dataclass(frozen=True)
class Phase:
    """A stretch of optimisation steps.

    Attributes:
        name: shown in progress and logs.
        steps: Adam steps of the phase (before the rate's step factor, :meth:`Tuning.fit_factor`).
        scale: the target's resolution relative to the image (0.25: a sixteenth of the pixels,
            about a sixth of a full step's time on the CPU).
        lr: the learning rates' multiple at the start of the phase.
        lr_end: their multiple at its end, reached along a half cosine (None: ``lr`` throughout).
        reach: the share of the Gaussian count present at the end of the phase; Gaussians are added
            in ``grow`` batches spread evenly over the phase, where the error is largest.
        grow: the number of growth batches (0: the count does not change).
        train: the parameter groups that move (:data:`GROUPS`).
        beta2: Adam's second-moment decay in the phase (β1 stays 0.9). A short memory (0.9 against
            torch's 0.999) keeps the step sizes following the gradients as the fit settles: a full-size
            phase of 150 steps ends higher with it (docs/encoder.md). None: the optimizer's own.
        lr_offset, lr_span: where the phase sits on its half cosine: step ``s`` of the phase is at
            ``(s + lr_offset) / lr_span`` of it (0: ``steps - 1``, the whole half cosine in this phase).
            A plan whose cosine runs across several phases (``lgi fit``'s: the resolution changes
            mid-decay) gives each phase its piece.
        grow_after: explicit growth, ``((step of the phase, Gaussians added after it), ...)``, instead
            of ``reach`` and ``grow``: for a plan whose growth is fixed in advance (``lgi fit``'s, so
            that a resumed fit grows as an uninterrupted one).
    """

    name: str
    steps: int
    scale: float = 1.0
    lr: float = 1.0
    lr_end: float | None = None
    reach: float = 1.0
    grow: int = 0
    train: tuple[str, ...] = GROUPS
    beta2: float | None = 0.999
    lr_offset: int = 0
    lr_span: int = 0
    grow_after: tuple[tuple[int, int], ...] = ()

    def lr_at(self, step: int) -> float:
        """The learning rates' multiple at ``step`` (0-based) of the phase."""
        span = self.lr_span or self.steps - 1
        if self.lr_end is None or span <= 0:
            return self.lr
        import math

        frac = (step + self.lr_offset) / span
        return self.lr_end + (self.lr - self.lr_end) * 0.5 * (1 + math.cos(math.pi * frac))


@dataclass(frozen=True)
class Tuning:
    """Everything an encode decides that the user does not.

    Attributes:
        fit: the fit's plan.
        select_after: the selection runs after this many phases of the fit: the fit's later phases
            refine only the Gaussians that fit the budget (the selection runs again after them, to
            measure the refined set).
        finetune: the quantization-aware fine-tuning's plan (positions, shape and colour values on
            their grids; ``train`` and ``reach`` are not used there).
        init_uniform: share of initial positions drawn uniformly (the rest ∝ squared gradient).
        init_scale: initial σ as a multiple of the RMS distance to the 3 nearest neighbours.
        start_share: share of the Gaussian count placed at initialisation (the rest grows in the
            fit's phases where the error is largest).
        color_solve: conjugate-gradient iterations that solve the initial colours in closed form under
            the initial geometry (0: colours sampled from the image).
        position_px: the position learning rate, in pixels of the image's longer side per step.
        lr_scale, lr_rotation, lr_color: Adam's learning rates of log-scales, rotations (radians)
            and colours.
        finetune_lr: the fine-tuning's learning rates as a multiple of the fit's.
        topk: the top-K blend's K; ``wide_topk`` from ``wide_topk_from`` Gaussians on.
        steps_at_1bpp: the fit's steps are multiplied by this at 1 bpp and above (log-linear from 1 at
            0.5 bpp): more Gaussians, fitted less per step.
        bits_per_gaussian: the rate model's prior, bits a Gaussian at the default quantizer steps.
        overshoot: Gaussians fitted beyond the rate model's first estimate, to select from.
        expected_shrink: the coded size after the fine-tuning's rate term ÷ the size before it; the
            selection aims at target ÷ this and the rate term's price is steered to land there.
        rate_db: the rate term's price in dB per bpp at 0.5 bpp (scaled as 1/bpp with the target,
            :func:`.select.price_scale`).
        margin: the share of the target the selection aims at.
        codec: the quantizer steps at 0.5 bpp (scaled with the rate, :func:`.select.step_scale`) and
            the precision classes.
        refine_slack: the refined set may code this much over the selection's aim before it is pruned
            again (the fine-tuning's steering takes it off).
    """

    fit: tuple[Phase, ...]
    finetune: tuple[Phase, ...]
    select_after: int = 2
    init_uniform: float = 0.3
    init_scale: float = 0.6
    start_share: float = 0.5
    color_solve: int = 0
    position_px: float = 0.384
    lr_scale: float = 0.04
    lr_rotation: float = 0.016
    lr_color: float = 0.01
    finetune_lr: float = 1.0
    topk: int = 6
    wide_topk: int = 10
    wide_topk_from: int = 8000
    steps_at_1bpp: float = 1.4
    bits_per_gaussian: float = 34.0
    overshoot: float = 1.05
    expected_shrink: float = 0.95
    rate_db: float = 6.0
    margin: float = 0.985
    refine_slack: float = 0.04
    codec: CodecSettings = field(default_factory=CodecSettings)

    def replace(self, **changes) -> Tuning:
        return dataclasses.replace(self, **changes)

    def fit_steps(self) -> int:
        return sum(p.steps for p in self.fit)

    def finetune_steps(self) -> int:
        return sum(p.steps for p in self.finetune)


def _plan(quarter: int, half: int, full: int, full_lr: float = 1.5) -> tuple[Phase, ...]:
    """A coarse-to-fine fit: quarter size (the count grows from half to all of it), half size, then full
    size with the learning rates decaying from ``full_lr`` and Adam's β2 at 0.9."""
    return (Phase("fit 1/4", quarter, scale=0.25, lr=1.5, grow=5),
            Phase("fit 1/2", half, scale=0.5, lr=1.5),
            Phase("fit 1/1", full, scale=1.0, lr=full_lr, lr_end=0.05, beta2=0.9))


def _finetune(full: int) -> tuple[Phase, ...]:
    """Fine-tuning at full size, the learning rates decaying to zero, Adam's β2 at 0.9."""
    return (Phase("fine-tune", full, scale=1.0, lr=1.0, lr_end=0.0, beta2=0.9),)


TUNINGS: dict[str, Tuning] = {
    "fast": Tuning(fit=_plan(150, 100, 40), finetune=_finetune(40)),
    # the full-size phase from 2 × the base rates (1.5 before 2026-12-07, later): +0.04 dB on Kodak at 0.5 bpp
    # (docs/encoder.md); fast and max were not measured with it
    "default": Tuning(fit=_plan(200, 200, 150, full_lr=2.0), finetune=_finetune(120)),
    "max": Tuning(fit=_plan(400, 400, 600), finetune=_finetune(300)),
}
