"""Fitting N Gaussians to an image (after Image-GS, SIGGRAPH 2025), built for CPUs as well as GPUs.

One step: render → loss → backward → Adam, in the encoder's own loop
(:func:`lgi_train.encode.fitting.run_plan`): a config compiles to a plan of phases (:meth:`Fitter.plan`),
which that loop runs with this module's hooks for logging, the best state, the plateau schedule,
checkpoints and the time cap. Around the step:

* progressive growth: start with ``initial_fraction``·N Gaussians, add the rest in
  ``growth_batches`` evenly spaced batches, the last at ``growth_end``·steps, at pixels drawn ∝
  the blurred error of the current render.
  A new Gaussian's colour is the target there for top-k blending (a normalized average moves
  toward the colours it blends) and the residual for sum blending (an additive model needs what
  is missing). Existing Gaussians keep their Adam moments (Image-GS resets them; see
  ``reset_optimizer_on_growth`` and docs/training.md for the measurement).
* plateau schedule (``schedule="plateau"``, Image-GS): once growth is done, when PSNR has not
  gained ``plateau_min_gain`` dB for ``plateau_patience`` steps, every learning rate is multiplied
  by ``lr_decay``; the ``max_plateaus``-th plateau ends the fit. ``schedule="cosine"`` spends a
  fixed budget instead: learning rates follow a half cosine from ``cosine_start``·steps down to
  ``lr_floor`` (the encoder's choice: with a step budget, a plateau detector wastes its patience).
  Both also stop at ``steps`` and ``max_seconds``.
* coarse-to-fine: the first ``coarse_fraction`` of the steps fit a ``coarse_scale`` downsampled
  target (same Gaussians: they are resolution independent), which costs a fraction per step; the
  first ``quarter_fraction`` of them a quarter-size one, as the encoder's fit begins.
* quantization-aware training: from ``qat_start``·steps on, every attribute is rounded to its bit
  depth in the forward pass (straight-through estimator).

Determinism: the same image, config and seed give the same Gaussians on the same device (the
kernels are deterministic; randomness comes from one seeded generator). A checkpoint holds the raw
parameters, Adam state, schedule state and generator state, so resuming equals not stopping.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lgi_dictco.fileio import atomic_open, atomic_write_bytes
from lgi_train.bands import clamped_sse, row_bands
from lgi_train.config import FitConfig
from lgi_train.encode.fitting import Targets, run_plan, train_step
from lgi_train.encode.tuning import Phase
from lgi_train.init import initialize
from lgi_train.losses import clamped_mse, make_loss, pixel_sum_for
from lgi_train.model import ATTRIBUTES, GaussianModel, QuantSpec, make_optimizer

CHECKPOINT_FORMAT = "lgi-train-checkpoint/2"  # /2: render mode "topk" is the continuous top-K blend


@dataclass
class StepInfo:
    step: int
    seconds: float
    num_gaussians: int
    loss: float
    psnr: float
    lr_scale: float
    stage: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class FitResult:
    model: GaussianModel
    psnr: float
    steps: int
    seconds: float
    stop_reason: str
    history: list[StepInfo] = field(default_factory=list)
    added: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    best_step: int | None = None  # the step whose state was kept, when it was not the last one


def is_grayscale(target: torch.Tensor) -> bool:
    """Whether a [C, H, W] image is gray: one channel, or three equal ones (what a grayscale file
    loads as; an RGB file whose pixels are all gray is one too)."""
    return target.shape[0] == 1 or bool(torch.equal(target[0], target[1]) and torch.equal(target[1], target[2]))


def position_lr(cfg: FitConfig, side: int) -> float:
    """The position learning rate on a canvas whose longer side is ``side`` pixels: ``cfg.lr_position``
    scaled by ``cfg.position_side / side`` above that side (the same step in pixels), unchanged at or below
    it or when ``position_side`` is None."""
    if cfg.position_side is None or side <= cfg.position_side:
        return cfg.lr_position
    return cfg.lr_position * cfg.position_side / side


class Fitter:
    """Fits ``cfg.num_gaussians`` Gaussians to ``target`` [C, H, W] in [0, 1].

    Args:
        target: the image.
        cfg: the configuration (validated).
        on_step: called with a StepInfo every ``cfg.log_every`` steps and at the end.
        checkpoint_dir: where ``cfg.checkpoint_every`` checkpoints go (None: none are written).
    """

    def __init__(self, target: torch.Tensor, cfg: FitConfig, on_step: Callable[[StepInfo], None] | None = None,
                 checkpoint_dir: Path | None = None):
        self.cfg = cfg.validate()
        self.device = torch.device(cfg.device)
        self.target = target.to(self.device, torch.float32).contiguous()
        self.on_step = on_step
        self.checkpoint_dir = checkpoint_dir
        self.loss_fn = make_loss(cfg)
        # Large images train in bands of rows when the loss is a sum over pixels (lgi_train.bands).
        self.pixel_sum = pixel_sum_for(cfg.loss)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.lrs = {"xy": position_lr(cfg, max(self.target.shape[1:])), "log_scale": cfg.lr_scale,
                    "rotation": cfg.lr_rotation, "color": cfg.lr_color}
        self.targets = Targets(self.target)  # the image at each scale (and as [H, W, C] for banded steps)
        self.model: GaussianModel | None = None
        self.optimizer: torch.optim.Adam | None = None
        #: the learning rates' multiple in the phases before the cosine decay (the v2 encoder's re-fit: 0.5)
        self.lr_before_decay = 1.0
        self.state = {"step": 0, "seconds": 0.0, "lr_scale": 1.0, "plateaus": 0, "best_psnr": -1.0,
                      "best_step": 0, "grown": 0}
        self.added: list[tuple[int, torch.Tensor]] = []
        self.history: list[StepInfo] = []
        # The best full-resolution state seen once growth is over: (PSNR, step, parameters).
        self.best: tuple[float, int, dict[str, torch.Tensor]] | None = None

    # --- set-up ----------------------------------------------------------------------------------

    def _initial_count(self) -> int:
        n = self.cfg.num_gaussians
        return max(1, int(round(n * self.cfg.initial_fraction))) if self.cfg.progressive else n

    def setup(self, init: dict[str, torch.Tensor] | None = None) -> None:
        """Create the model from ``init`` (or the configured init mode) and the optimizer."""
        cfg = self.cfg
        if init is None:
            init = initialize(self.target, self._initial_count(), cfg, self.generator)
        self.model = GaussianModel(init["xy"], init["scales"], init["rotations"], init["colors"],
                                   render_mode=cfg.render_mode, topk=cfg.topk, backend=cfg.backend).to(self.device)
        self.optimizer = make_optimizer(self.model, self.lrs, self.cfg.adam_beta2)

    def _target_at(self, scale: float) -> torch.Tensor:
        return self.targets.at(scale)

    # --- schedule --------------------------------------------------------------------------------

    def _growth_steps(self) -> list[int]:
        """The step counts after which a batch grows (a pure function of the config, so a resumed fit
        grows identically)."""
        if not self.cfg.progressive or self._initial_count() >= self.cfg.num_gaussians:
            return []
        last = max(1, int(self.cfg.growth_end * self.cfg.steps))
        steps = sorted({max(1, round(last * (k + 1) / self.cfg.growth_batches)) for k in range(self.cfg.growth_batches)})
        return steps

    def plan(self) -> tuple[Phase, ...]:
        """This config's schedule as a plan of phases for the encoder's loop (:func:`lgi_train.encode.fitting.run_plan`).

        The plan is cut where the resolution changes (``coarse_fraction``), where the cosine decay
        starts (it runs across the cut: each phase gets its piece), and where quantization-aware
        training starts; growth batches sit at :meth:`_growth_steps`. Adam's β2 is the optimizer's own
        (``adam_beta2``, or what a resumed checkpoint saved); :attr:`lr_before_decay` multiplies the
        learning rates before the decay."""
        cfg = self.cfg
        total = cfg.steps
        coarse_end = int(cfg.coarse_fraction * total) if cfg.coarse_to_fine else 0
        quarter_end = int(cfg.quarter_fraction * total) if cfg.coarse_to_fine else 0
        cosine_start = int(cfg.cosine_start * total) if cfg.schedule == "cosine" else total
        cuts = {0, total, coarse_end, quarter_end, cosine_start + 1}
        if cfg.qat:
            cuts.add(int(cfg.qat_start * total))
        cuts = sorted(c for c in cuts if 0 <= c <= total)
        growth = self._growth_steps()
        remaining = cfg.num_gaussians - self._initial_count()
        batches = [remaining // len(growth) + (1 if k < remaining % len(growth) else 0) for k in range(len(growth))]
        phases = []
        for a, b in zip(cuts, cuts[1:]):
            if b <= a:
                continue
            coarse = a < coarse_end
            # the step counted g grows after the step of index g - 1
            grow_after = tuple((g - 1 - a, n) for g, n in zip(growth, batches) if a <= g - 1 < b)
            decay = {} if a <= cosine_start else dict(lr_end=cfg.lr_floor, lr_offset=a - cosine_start,
                                                       lr_span=total - cosine_start)
            scale = (0.25 if a < quarter_end else cfg.coarse_scale) if coarse else 1.0
            phases.append(Phase("coarse" if coarse else "fine", b - a, scale=scale,
                                lr=self.lr_before_decay if not decay else 1.0, beta2=None, grow_after=grow_after,
                                **decay))
        return tuple(phases)

    def _grow(self, render: torch.Tensor, target: torch.Tensor, count: int) -> None:
        """Add ``count`` Gaussians where the blurred error of this step's render is largest (the encoder's
        growth rule, :func:`lgi_train.encode.fitting.grow`)."""
        from lgi_train.encode.fitting import grow

        cfg = self.cfg
        xy = grow(self.model, self.optimizer, render.detach(), target, count, tuple(self.target.shape[1:]),
                  self.generator, cfg.init_scale, cfg.growth_blur, residual=cfg.render_mode == "sum",
                  reset_optimizer=cfg.reset_optimizer_on_growth)
        self.added.append((self.state["step"], xy.cpu()))

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> FitResult:
        """Run the plan (:meth:`plan`) from the current step in the encoder's loop; keep the best state."""
        if self.model is None:
            self.setup()
        cfg, st = self.cfg, self.state
        hooks = _FitterHooks(self, time.perf_counter() - st["seconds"])
        if cfg.max_seconds is not None and time.perf_counter() - hooks.t_start >= cfg.max_seconds:
            hooks.stop_reason = "max_seconds"
        elif st["step"] < cfg.steps:
            run_plan(self.model, self.optimizer, self.targets, self.plan(), self.lrs, self._grow, start=st["step"],
                     loss=self.loss_fn, pixel_sum=self.pixel_sum, hooks=hooks)
        model = self.model
        st["seconds"] = time.perf_counter() - hooks.t_start
        model.quant = (QuantSpec(cfg.bits_position, cfg.bits_scale, cfg.bits_rotation, cfg.bits_color)
                       if cfg.qat and st["step"] > int(cfg.qat_start * cfg.steps) else None)
        final_psnr = self._final_psnr()
        best_step = None
        if self.best is not None and self.best[0] > final_psnr and self.best[2]["xy"].shape == model.xy.shape:
            # The last step is not the best one seen (a late rise of the loss, a learning rate still
            # high at a time cap): keep the best. Its PSNR was measured on this very state.
            with torch.no_grad():
                for name, value in self.best[2].items():
                    getattr(model, name).copy_(value)
            best_step, final_psnr = self.best[1], self._final_psnr()
        if self.history and self.history[-1].step != st["step"] or not self.history:
            self._log(float("nan"), final_psnr, "final", hooks.t_start, force=True)
        return FitResult(model=model, psnr=final_psnr, steps=st["step"], seconds=st["seconds"],
                         stop_reason=hooks.stop_reason, history=self.history, added=self.added, best_step=best_step)

    @torch.no_grad()
    def _final_psnr(self) -> float:
        h, w = self.target.shape[1:]
        bands = row_bands(h, w)
        if len(bands) == 1:
            mse = clamped_mse(self.model.render(h, w), self.target)
        else:
            hwc = self.targets.hwc(1.0)
            mse = sum(clamped_sse(self.model.render_rows(h, w, rows), hwc[rows[0]:rows[1]]) for rows in bands)
            mse /= hwc.numel()
        return 10 * math.log10(1 / mse) if mse > 0 else 99.0

    def _train_step(self, target: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, float]:
        """One step of the fit's loss against ``target`` outside the plan (a timing probe): render, loss,
        backward, Adam. Returns the render (None for one drawn in bands), the loss and the render's PSNR
        (clamped to [0, 1])."""
        h, w = target.shape[1:]
        banded = self.pixel_sum is not None and len(row_bands(h, w)) > 1
        render, loss, mse = train_step(self.model, self.optimizer, target, hwc=self.targets.hwc_of(target) if banded else None,
                                       loss=self.loss_fn, pixel_sum=self.pixel_sum, measure=True)
        return render, loss, 10 * math.log10(1 / mse) if mse > 0 else 99.0

    def _log(self, loss: float, psnr: float, stage: str, t_start: float, force: bool = False) -> None:
        st = self.state
        if not force and st["step"] % self.cfg.log_every and st["step"] != self.cfg.steps:
            return
        info = StepInfo(step=st["step"], seconds=time.perf_counter() - t_start,
                        num_gaussians=self.model.num_gaussians, loss=loss, psnr=psnr, lr_scale=st["lr_scale"],
                        stage=stage)
        self.history.append(info)
        if self.on_step:
            self.on_step(info)

    # --- checkpoints -----------------------------------------------------------------------------

    def save_checkpoint(self, path: Path) -> None:
        """Parameters, optimizer, schedule, generator state and config; written atomically."""
        model = self.model
        payload = {
            "format": CHECKPOINT_FORMAT,
            "params": {name: getattr(model, name).detach().cpu().clone() for name in ATTRIBUTES},
            "render_mode": model.render_mode, "topk": model.topk,
            "optimizer": self.optimizer.state_dict(),
            "state": dict(self.state),
            "generator": self.generator.get_state(),
            "added": self.added,
            "best": None if self.best is None else {"psnr": self.best[0], "step": self.best[1],
                                                    "params": {k: v.cpu() for k, v in self.best[2].items()}},
            "config": self.cfg.to_dict(),
            "image_size": list(self.target.shape),
            "channels": 1 if is_grayscale(self.target) else 3,  # `lgi render` keeps a gray input gray
        }
        with atomic_open(path) as f:
            torch.save(payload, f)

    def load_checkpoint(self, path: Path) -> None:
        """Restore everything ``save_checkpoint`` wrote; the config of this Fitter must match."""
        ckpt = load_checkpoint(path)
        if list(self.target.shape) != ckpt["image_size"]:
            raise ValueError(f"checkpoint {path} was made for an image of shape {ckpt['image_size']}, "
                             f"not {list(self.target.shape)}")
        p = ckpt["params"]
        self.model = GaussianModel(p["xy"], torch.ones_like(p["log_scale"]), p["rotation"], p["color"],
                                   render_mode=ckpt["render_mode"], topk=ckpt["topk"],
                                   backend=self.cfg.backend).to(self.device)
        with torch.no_grad():
            self.model.log_scale.copy_(p["log_scale"])
        self.optimizer = make_optimizer(self.model, self.lrs, self.cfg.adam_beta2)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = dict(ckpt["state"])
        self.generator.set_state(ckpt["generator"])
        self.added = list(ckpt["added"])
        best = ckpt.get("best")
        self.best = None if best is None else (best["psnr"], best["step"],
                                               {k: v.to(self.device) for k, v in best["params"].items()})


class _FitterHooks:
    """:class:`Fitter`'s part of the loop (:class:`lgi_train.encode.fitting.Hooks`): quantization-aware phases,
    the best state, the plateau schedule, the log, checkpoints and the time cap."""

    measure = True

    def __init__(self, fitter: Fitter, t_start: float):
        cfg = fitter.cfg
        self.fitter, self.t_start, self.stop_reason = fitter, t_start, "steps"
        self.growth = fitter._growth_steps()
        self.qat_from = int(cfg.qat_start * cfg.steps) if cfg.qat else None
        self.lr_multiple = fitter.state["lr_scale"] if cfg.schedule != "cosine" else 1.0

    def _grown_by(self, steps: int) -> bool:
        """Every growth batch added by the time ``steps`` steps are done."""
        return not self.growth or self.growth[-1] <= steps

    def phase_started(self, phase, step: int) -> None:
        cfg = self.fitter.cfg
        self.fitter.model.quant = (QuantSpec(cfg.bits_position, cfg.bits_scale, cfg.bits_rotation, cfg.bits_color)
                                   if self.qat_from is not None and step >= self.qat_from else None)

    def before_update(self, done) -> None:
        f, cfg = self.fitter, self.fitter.cfg
        # Candidates for the kept state: full resolution, all Gaussians in, quantized if the end is.
        track = (done.phase.name == "fine" and self._grown_by(done.step - 1)
                 and (f.model.quant is not None) == cfg.qat)
        self.psnr = psnr = 10 * math.log10(1 / done.mse) if done.mse > 0 else 99.0  # read again by after_step
        if track and (f.best is None or psnr > f.best[0]):
            f.best = (psnr, done.step - 1, {name: getattr(f.model, name).detach().clone() for name in ATTRIBUTES})
        f.state["step"] = done.step  # before a growth batch: it is recorded at this step

    def after_step(self, done) -> bool:
        f, cfg, st, psnr = self.fitter, self.fitter.cfg, self.fitter.state, self.psnr
        st["grown"] = sum(1 for g in self.growth if g <= done.step)
        if cfg.schedule == "cosine":
            st["lr_scale"] = done.lr
        elif done.phase.name == "fine" and self._grown_by(done.step - 1):
            if psnr > st["best_psnr"] + cfg.plateau_min_gain:
                st["best_psnr"], st["best_step"] = psnr, st["step"]
            elif st["step"] - st["best_step"] >= cfg.plateau_patience:
                st["plateaus"] += 1
                if st["plateaus"] >= cfg.max_plateaus:
                    self.stop_reason = "plateau"
                    f._log(float(done.loss.detach()), psnr, done.phase.name, self.t_start, force=True)
                    return True
                st["lr_scale"] = self.lr_multiple = st["lr_scale"] * cfg.lr_decay
                st["best_step"] = st["step"]
        else:
            st["best_step"] = st["step"]
        f._log(float(done.loss.detach()), psnr, done.phase.name, self.t_start)
        if cfg.checkpoint_every and f.checkpoint_dir and st["step"] % cfg.checkpoint_every == 0:
            st["seconds"] = time.perf_counter() - self.t_start
            f.save_checkpoint(f.checkpoint_dir / f"step_{st['step']:07d}.pt")
        if cfg.max_seconds is not None and st["step"] < cfg.steps and time.perf_counter() - self.t_start >= cfg.max_seconds:
            self.stop_reason = "max_seconds"
            return True
        return False


def load_checkpoint(path: Path) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint not found: {path}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (CHECKPOINT_FORMAT, "lgi-train-checkpoint/1"):
        raise ValueError(f"{path} is not an lgi-train checkpoint")
    if ckpt["format"] == "lgi-train-checkpoint/1" and ckpt.get("render_mode") == "topk":
        # Fitted with the top-K blend of lgi-gsplat2d 0.1, whose cutoff was hard: render it that way.
        ckpt["render_mode"] = "topk-hard"
        ckpt.get("config", {})["render_mode"] = "topk-hard"
    return ckpt


def model_from_checkpoint(path: Path, backend: str = "auto", device: str = "cpu") -> GaussianModel:
    ckpt = load_checkpoint(path)
    p = ckpt["params"]
    model = GaussianModel(p["xy"], torch.exp(p["log_scale"]), p["rotation"], p["color"],
                          render_mode=ckpt["render_mode"], topk=ckpt["topk"], backend=backend)
    return model.to(device)


def fit(target: torch.Tensor, cfg: FitConfig, on_step: Callable[[StepInfo], None] | None = None) -> FitResult:
    """Fit ``cfg.num_gaussians`` Gaussians to ``target`` [C, H, W] in [0, 1]; see :class:`Fitter`."""
    return Fitter(target, cfg, on_step).run()


def steps_for_budget(target: torch.Tensor, cfg: FitConfig, seconds: float, probe_steps: int = 6,
                     margin: float = 0.92) -> tuple[int, float]:
    """The step count a cosine-scheduled fit of ``cfg`` can finish in ``seconds`` on this machine.

    A schedule over steps only decays if the fit reaches its last step; a wall-clock cap that cuts
    a cosine fit short leaves it at a high learning rate. This times ``probe_steps`` steps of the
    full set at each stage the fit will use (coarse and fine) in a throw-away fit and sizes the
    budget from them, keeping ``margin`` of the time. Growth only makes early steps cheaper, so the
    estimate errs on the short side. Returns (steps, seconds the probe took).
    """
    import dataclasses

    t0 = time.perf_counter()
    probe = Fitter(target, dataclasses.replace(cfg, progressive=False, init="random", checkpoint_every=0))
    probe.setup()
    per_step = {}
    quarter = cfg.quarter_fraction if cfg.coarse_to_fine else 0.0
    for scale in ({cfg.coarse_scale, 1.0} | ({0.25} if quarter else set()) if cfg.coarse_to_fine else {1.0}):
        tgt = probe._target_at(scale)
        times = []
        for _ in range(probe_steps + 1):  # the first is a warm-up (kernel load, allocator)
            start = time.perf_counter()
            probe._train_step(tgt)
            times.append(time.perf_counter() - start)
        per_step[scale] = sum(times[1:]) / probe_steps
    coarse = cfg.coarse_fraction if cfg.coarse_to_fine else 0.0
    mean = (quarter * per_step.get(0.25, 0.0) + (coarse - quarter) * per_step.get(cfg.coarse_scale, 0.0)
            + (1 - coarse) * per_step[1.0])
    probe_seconds = time.perf_counter() - t0
    return max(1, int(margin * max(0.0, seconds - probe_seconds) / mean)), probe_seconds


def write_metrics(history: list[StepInfo], run_dir: Path) -> None:
    """metrics.jsonl and metrics.csv (step, seconds, N, loss, PSNR, lr scale, stage)."""
    jsonl = "".join(json.dumps(h.as_dict()) + "\n" for h in history)
    atomic_write_bytes(run_dir / "metrics.jsonl", jsonl.encode())
    rows = ["step,seconds,num_gaussians,loss,psnr,lr_scale,stage\n"]
    rows += [f"{h.step},{h.seconds:.4f},{h.num_gaussians},{h.loss:.6g},{h.psnr:.4f},{h.lr_scale:.4g},{h.stage}\n"
             for h in history]
    atomic_write_bytes(run_dir / "metrics.csv", "".join(rows).encode())
