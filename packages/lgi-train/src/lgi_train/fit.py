"""Fitting N Gaussians to an image (after Image-GS, SIGGRAPH 2025), built for CPUs as well as GPUs.

One step: render → loss → backward → Adam. Around it:

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
  target (same Gaussians: they are resolution independent), which costs a fraction per step.
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
import torch.nn.functional as F

from lgi_dictco.fileio import atomic_open, atomic_write_bytes
from lgi_train.bands import backward_in_bands, clamped_sse, row_bands
from lgi_train.config import FitConfig
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


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """[H, W] Gaussian blur with a separable kernel (replicate padding)."""
    if sigma <= 0:
        return img
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=img.dtype, device=img.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    out = F.pad(img[None, None], (r, r, r, r), mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1))
    return F.conv2d(out, k.view(1, 1, -1, 1))[0, 0]


def downsample(target: torch.Tensor, scale: float) -> torch.Tensor:
    """[C, H, W] → [C, round(H·s), round(W·s)] by area averaging (antialiased)."""
    h, w = target.shape[1:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(target[None], size=size, mode="area")[0]


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
        self._targets: dict[float, torch.Tensor] = {1.0: self.target}
        self._targets_hwc: dict[float, torch.Tensor] = {}  # [H, W, C] copies, for the banded steps
        self.model: GaussianModel | None = None
        self.optimizer: torch.optim.Adam | None = None
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
        if scale not in self._targets:
            self._targets[scale] = downsample(self.target, scale).contiguous()
        return self._targets[scale]

    # --- schedule --------------------------------------------------------------------------------

    def _growth_steps(self) -> list[int]:
        if not self.cfg.progressive or self._initial_count() >= self.cfg.num_gaussians:
            return []
        last = max(1, int(self.cfg.growth_end * self.cfg.steps))
        steps = sorted({max(1, round(last * (k + 1) / self.cfg.growth_batches)) for k in range(self.cfg.growth_batches)})
        return steps

    def _stage(self, step: int) -> tuple[str, float]:
        cfg = self.cfg
        if cfg.coarse_to_fine and step < int(cfg.coarse_fraction * cfg.steps):
            return "coarse", cfg.coarse_scale
        return "fine", 1.0

    def _set_lr_scale(self, scale: float) -> None:
        self.state["lr_scale"] = scale
        for group in self.optimizer.param_groups:
            group["lr"] = self.lrs[group["name"]] * scale

    def _grow(self, render: torch.Tensor, target: torch.Tensor, count: int) -> None:
        """Add ``count`` Gaussians where the blurred error of this step's render is largest (the encoder's
        growth rule, :func:`lgi_train.encode.fitting.grow`)."""
        from lgi_train.encode.fitting import grow

        cfg = self.cfg
        xy = grow(self.model, self.optimizer, render, target, count, tuple(self.target.shape[1:]), self.generator,
                  cfg.init_scale, cfg.growth_blur, residual=cfg.render_mode == "sum",
                  reset_optimizer=cfg.reset_optimizer_on_growth)
        self.added.append((self.state["step"], xy.cpu()))

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> FitResult:
        if self.model is None:
            self.setup()
        cfg, st, model = self.cfg, self.state, self.model
        growth = self._growth_steps()
        # A pure function of the config (not of the current N), so a resumed fit grows identically.
        remaining = cfg.num_gaussians - self._initial_count()
        stop_reason = "steps"
        t_start = time.perf_counter() - st["seconds"]
        while st["step"] < cfg.steps:
            if cfg.max_seconds is not None and time.perf_counter() - t_start >= cfg.max_seconds:
                stop_reason = "max_seconds"
                break
            step = st["step"]
            stage, scale = self._stage(step)
            target = self._target_at(scale)
            model.quant = (QuantSpec(cfg.bits_position, cfg.bits_scale, cfg.bits_rotation, cfg.bits_color)
                           if cfg.qat and step >= int(cfg.qat_start * cfg.steps) else None)
            # Candidates for the kept state: full resolution, all Gaussians in, quantized if the end is.
            track = stage == "fine" and st["grown"] >= len(growth) and (model.quant is not None) == cfg.qat
            grows = st["grown"] < len(growth) and step + 1 == growth[st["grown"]]
            render, loss, psnr = self._train_step(target, keep_best=track, need_render=grows)
            st["step"] = step + 1

            grown_all = st["grown"] >= len(growth)
            if st["grown"] < len(growth) and st["step"] == growth[st["grown"]]:
                batch = remaining // len(growth) + (1 if st["grown"] < remaining % len(growth) else 0)
                if batch > 0:
                    self._grow(render.detach(), target, batch)
                st["grown"] += 1
                model = self.model
            if cfg.schedule == "cosine":
                start = int(cfg.cosine_start * cfg.steps)
                if st["step"] > start:
                    frac = (st["step"] - start) / max(1, cfg.steps - start)
                    self._set_lr_scale(cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * frac)))
            elif stage == "fine" and grown_all:
                if psnr > st["best_psnr"] + cfg.plateau_min_gain:
                    st["best_psnr"], st["best_step"] = psnr, st["step"]
                elif st["step"] - st["best_step"] >= cfg.plateau_patience:
                    st["plateaus"] += 1
                    if st["plateaus"] >= cfg.max_plateaus:
                        stop_reason = "plateau"
                        self._log(float(loss.detach()), psnr, stage, t_start, force=True)
                        break
                    self._set_lr_scale(st["lr_scale"] * cfg.lr_decay)
                    st["best_step"] = st["step"]
            else:
                st["best_step"] = st["step"]
            self._log(float(loss.detach()), psnr, stage, t_start)
            if cfg.checkpoint_every and self.checkpoint_dir and st["step"] % cfg.checkpoint_every == 0:
                st["seconds"] = time.perf_counter() - t_start
                self.save_checkpoint(self.checkpoint_dir / f"step_{st['step']:07d}.pt")
        st["seconds"] = time.perf_counter() - t_start
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
            self._log(float("nan"), final_psnr, "final", t_start, force=True)
        return FitResult(model=model, psnr=final_psnr, steps=st["step"], seconds=st["seconds"],
                         stop_reason=stop_reason, history=self.history, added=self.added, best_step=best_step)

    @torch.no_grad()
    def _final_psnr(self) -> float:
        h, w = self.target.shape[1:]
        bands = row_bands(h, w)
        if len(bands) == 1:
            mse = clamped_mse(self.model.render(h, w), self.target)
        else:
            hwc = self._target_hwc(1.0)
            mse = sum(clamped_sse(self.model.render_rows(h, w, rows), hwc[rows[0]:rows[1]]) for rows in bands)
            mse /= hwc.numel()
        return 10 * math.log10(1 / mse) if mse > 0 else 99.0

    def _target_hwc(self, scale: float) -> torch.Tensor:
        if scale not in self._targets_hwc:
            self._targets_hwc[scale] = self._target_at(scale).permute(1, 2, 0).contiguous()
        return self._targets_hwc[scale]

    def _hwc_of(self, target: torch.Tensor) -> torch.Tensor:
        """``target`` as [H, W, C]: kept for the fit's own targets, copied for any other."""
        for scale, t in self._targets.items():
            if t is target:
                return self._target_hwc(scale)
        return target.permute(1, 2, 0).contiguous()

    def _train_step(self, target: torch.Tensor, keep_best: bool = False,
                    need_render: bool = True) -> tuple[torch.Tensor | None, torch.Tensor, float]:
        """One optimization step against ``target``: render, loss, backward, Adam. Returns the render,
        the loss and the render's PSNR (clamped to [0, 1]). ``keep_best``: if that PSNR is the best
        so far, remember the parameters it was rendered from (before Adam moves them). A target above
        :data:`lgi_train.bands.BAND_PIXELS` pixels is rendered in bands of rows (with a pixel-sum loss);
        its render is then returned only if ``need_render``, else None."""
        h, w = target.shape[1:]
        bands = row_bands(h, w) if self.pixel_sum is not None else [(0, h)]
        self.optimizer.zero_grad(set_to_none=True)
        if len(bands) == 1:
            render = self.model.render(h, w)
            loss = self.loss_fn(render, target)
            loss.backward()
            mse = clamped_mse(render, target)
        else:
            render = torch.empty_like(target) if need_render else None
            m = self.model
            value, sse = backward_in_bands(m.params(), h, w, m.render_mode, m.topk, m.backend, self._hwc_of(target),
                                           self.pixel_sum, bands, keep=render)
            loss, mse = torch.tensor(value), sse / target.numel()
        psnr = 10 * math.log10(1 / mse) if mse > 0 else 99.0
        if keep_best and (self.best is None or psnr > self.best[0]):
            self.best = (psnr, self.state["step"],
                         {name: getattr(self.model, name).detach().clone() for name in ATTRIBUTES})
        self.optimizer.step()
        return render, loss, psnr

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
    for scale in ({cfg.coarse_scale, 1.0} if cfg.coarse_to_fine else {1.0}):
        tgt = probe._target_at(scale)
        times = []
        for _ in range(probe_steps + 1):  # the first is a warm-up (kernel load, allocator)
            start = time.perf_counter()
            probe._train_step(tgt)
            times.append(time.perf_counter() - start)
        per_step[scale] = sum(times[1:]) / probe_steps
    coarse = cfg.coarse_fraction if cfg.coarse_to_fine else 0.0
    mean = coarse * per_step.get(cfg.coarse_scale, 0.0) + (1 - coarse) * per_step[1.0]
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
