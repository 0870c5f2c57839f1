"""Training DCAE: rate-distortion loss, two optimizers, AMP on CUDA, DDP through torchrun, checkpoints.

The recipe of Lu et al. (CVPR 2025) and its reference code: random 256×256 crops, batch 8, Adam with
learning rate 1e-4 for the network and 1e-3 for the entropy bottleneck's quantiles (the auxiliary loss),
gradient clipping at 1.0, 50 epochs with the learning rate divided by 10 after epochs 40 and 45, and one
model per λ. The loss is ``λ·255²·MSE + bpp`` (or ``λ·(1 − MS-SSIM) + bpp``).

Multi-GPU / multi-node: start the same command under ``torchrun``; every process trains on its share of
the data (``DistributedSampler``), gradients are averaged by ``DistributedDataParallel``, and rank 0
alone writes logs and checkpoints. Without CUDA the gloo backend is used, so it also runs on CPUs.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from lgi_dictco.dcae.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from lgi_dictco.dcae.data import ImageCrops
from lgi_dictco.dcae.registry import build_model

METRICS = ("mse", "ms-ssim")
STEP_LOG = "train_log.csv"
EPOCH_LOG = "epochs.csv"


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the reference recipe.

    Attributes:
        data: folder of training images.
        output: folder for ``last.pt``, ``best.pt`` and the CSV logs.
        model: preset name (ignored when resuming: the checkpoint's sizes are used).
        lmbda: rate-distortion trade-off λ.
        metric: "mse" (λ·255²·MSE + bpp) or "ms-ssim" (λ·(1 − MS-SSIM) + bpp).
        epochs: epochs to train (counted from 0, including those of a resumed run).
        max_steps: stop after this many optimizer steps in total (short runs); None for no limit.
        batch_size: images per step per process.
        patch_size: crop side.
        repeats: crops per training image per epoch (small folders).
        learning_rate: Adam learning rate of the network.
        aux_learning_rate: Adam learning rate of the entropy bottleneck's quantiles.
        milestones: epochs after which the learning rate is multiplied by ``gamma``.
        gamma: learning-rate decay factor.
        clip_max_norm: gradient-norm clipping of the network (0 disables).
        val_data: folder of validation images (centred crops); without it, the best checkpoint is chosen
            by the epoch's mean training loss.
        num_workers: data-loading processes per training process.
        seed: seeds model initialisation (same on every rank) and data order.
        device: "auto", "cpu", "cuda" or "cuda:N" (under torchrun, each rank uses cuda:LOCAL_RANK).
        amp: mixed precision with GradScaler (CUDA only; ignored on CPU).
        resume: checkpoint to continue from, or "auto" for ``output/last.pt`` if it exists.
        init: checkpoint whose weights (and sizes) start a new run: another λ fine-tuned from a trained
            model, with fresh optimizers and schedule. Ignored when resuming.
        hflip: mirror half of the training crops left-right.
        scale_min: scale augmentation: crops of ``patch_size / s`` pixels shrunk to the patch, ``s``
            log-uniform in [scale_min, 1] (1: off).
        log_every: steps between rows of the step log.
        threads: CPU threads for torch (None: torch's default).
        progress: show a progress bar (rank 0).
    """

    data: str
    output: str = "runs/dcae"
    model: str = "dcae-paper"
    lmbda: float = 0.0067
    metric: str = "mse"
    epochs: int = 50
    max_steps: int | None = None
    batch_size: int = 8
    patch_size: int = 256
    repeats: int = 1
    learning_rate: float = 1e-4
    aux_learning_rate: float = 1e-3
    milestones: tuple[int, ...] = field(default=(40, 45))
    gamma: float = 0.1
    clip_max_norm: float = 1.0
    val_data: str | None = None
    num_workers: int = 2
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    resume: str | None = None
    init: str | None = None
    hflip: bool = False
    scale_min: float = 1.0
    log_every: int = 10
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.milestones = tuple(int(m) for m in self.milestones)
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if not (self.lmbda > 0 and math.isfinite(self.lmbda)):
            raise ValueError(f"λ must be a positive number, got {self.lmbda}")
        for name in ("epochs", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be ≥ 1, got {self.max_steps}")
        if not 0 < self.scale_min <= 1:
            raise ValueError(f"scale_min must be in (0, 1], got {self.scale_min}")
        if self.metric == "ms-ssim" and self.patch_size <= 160:
            raise ValueError("MS-SSIM (5 scales, 11×11 window) needs crops larger than 160 pixels")


class RateDistortionLoss(nn.Module):
    """``λ·255²·MSE + bpp`` or ``λ·(1 − MS-SSIM) + bpp``, computed in float32.

    Args:
        lmbda: λ.
        metric: "mse" or "ms-ssim".
    """

    def __init__(self, lmbda: float, metric: str = "mse"):
        super().__init__()
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.lmbda, self.metric = lmbda, metric

    def forward(self, out: dict, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """out: the model's forward result; target: [B, 3, H, W] -> {"loss", "bpp", "mse", "psnr", ...}."""
        n, _, h, w = target.shape
        bits = sum(torch.log2(lik.float()).sum() for lik in out["likelihoods"].values())
        bpp = -bits / (n * h * w)
        x_hat = out["x_hat"].float()
        mse = F.mse_loss(x_hat, target)
        result = {"bpp": bpp, "mse": mse, "psnr": -10 * torch.log10(mse.detach().clamp_min(1e-10))}
        if self.metric == "mse":
            result["loss"] = self.lmbda * 255**2 * mse + bpp
        else:
            from pytorch_msssim import ms_ssim

            msssim = ms_ssim(x_hat, target, data_range=1.0)
            result["ms_ssim"] = msssim
            result["loss"] = self.lmbda * (1 - msssim) + bpp
        return result


def configure_optimizers(
    model: nn.Module, lr: float, aux_lr: float
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam over the network, and Adam over the entropy bottleneck's ``quantiles`` (the auxiliary loss)."""
    main = [
        p for n, p in sorted(model.named_parameters()) if not n.endswith(".quantiles") and p.requires_grad
    ]
    aux = [p for n, p in sorted(model.named_parameters()) if n.endswith(".quantiles") and p.requires_grad]
    return torch.optim.Adam(main, lr=lr), torch.optim.Adam(aux, lr=aux_lr)


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup(cfg: TrainConfig) -> tuple[_Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    if want_cuda and not torch.cuda.is_available():
        raise ValueError(f"device {cfg.device!r} asked for CUDA, but no CUDA device is available")
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if want_cuda else "gloo")
        d = _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
        device = torch.device("cuda", d.local_rank) if want_cuda else torch.device("cpu")
    else:
        d = _Dist()
        device = torch.device(cfg.device if cfg.device != "auto" else ("cuda" if want_cuda else "cpu"))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return d, device


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _mean_across_ranks(values: dict[str, float], d: _Dist, device: torch.device) -> dict[str, float]:
    if d.world == 1:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / d.world).tolist()))


@torch.no_grad()
def validate(
    model: nn.Module, loader: DataLoader, criterion: RateDistortionLoss, device: torch.device
) -> dict:
    """Mean loss, bpp, MSE and PSNR over a loader, in eval mode (rounding instead of noise)."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    for x in loader:
        x = x.to(device)
        result = criterion(model(x), x)
        for k, v in result.items():
            sums[k] = sums.get(k, 0.0) + float(v) * x.shape[0]
        count += x.shape[0]
    model.train(was_training)
    return {k: v / max(count, 1) for k, v in sums.items()}


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) a training run.

    Returns:
        A summary: ``{"epochs_done", "steps", "best_loss", "last", "best", "model"}`` where ``model`` is
        the trained (unwrapped) network of this process.
    """
    d, device = _setup(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out_dir = Path(cfg.output)
    if d.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    resume_path = cfg.resume
    if resume_path == "auto":
        resume_path = str(out_dir / "last.pt") if (out_dir / "last.pt").is_file() else None
    ckpt = load_checkpoint(resume_path) if resume_path else None
    if ckpt is not None:
        for key, ours in (("lmbda", cfg.lmbda), ("metric", cfg.metric)):
            if key in ckpt and ckpt[key] != ours:
                raise CheckpointError(
                    f"{resume_path} was trained with {key}={ckpt[key]}, this run asks for "
                    f"{ours}: start a new output folder to train another trade-off"
                )
        model = model_from_checkpoint(ckpt)
    elif cfg.init:
        model = model_from_checkpoint(load_checkpoint(cfg.init))
    else:
        torch.manual_seed(cfg.seed)  # identical initialisation on every rank
        model = build_model(cfg.model)
    model.to(device).train()
    optimizer, aux_optimizer = configure_optimizers(model, cfg.learning_rate, cfg.aux_learning_rate)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), gamma=cfg.gamma)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch, step, best_loss = 0, 0, math.inf
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        aux_optimizer.load_state_dict(ckpt["aux_optimizer"])
        scheduler.load_state_dict(ckpt["lr_scheduler"])
        if "scaler" in ckpt and use_amp:
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, step = int(ckpt["epoch"]) + 1, int(ckpt["step"])
        best_loss = float(ckpt.get("best_loss", math.inf))
    net: nn.Module = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )

    dataset = ImageCrops(
        cfg.data,
        cfg.patch_size,
        random_crop=True,
        repeats=cfg.repeats,
        hflip=cfg.hflip,
        scale_min=cfg.scale_min,
    )
    sampler = (
        DistributedSampler(dataset, d.world, d.rank, shuffle=True, seed=cfg.seed)
        if d.world > 1
        else RandomSampler(dataset)
    )
    per_rank = len(dataset) // d.world
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=per_rank >= cfg.batch_size,
        pin_memory=device.type == "cuda",
    )
    val_loader = None
    if cfg.val_data and d.main:
        val_set = ImageCrops(cfg.val_data, cfg.patch_size, random_crop=False)
        val_loader = DataLoader(val_set, batch_size=1, sampler=SequentialSampler(val_set))
    criterion = RateDistortionLoss(cfg.lmbda, cfg.metric)
    main_params = [p for group in optimizer.param_groups for p in group["params"]]
    quantiles = [p for group in aux_optimizer.param_groups for p in group["params"]]

    bar = None
    if cfg.progress and d.main:
        from tqdm.auto import tqdm

        total = cfg.max_steps or len(loader) * cfg.epochs
        bar = tqdm(
            total=total,
            initial=min(step, total),
            desc=f"train λ={cfg.lmbda:g}",
            unit="step",
            dynamic_ncols=True,
        )
    epoch = start_epoch - 1
    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
        # Crops and order depend only on (seed, rank, epoch): a resumed run sees what an uninterrupted
        # one would.
        torch.manual_seed(cfg.seed + 1000 * d.rank + epoch + 1)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        sums = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "aux": 0.0}
        seen = 0
        for x in loader:
            x = x.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                out = net(x)
            result = criterion(out, x)
            scaler.scale(result["loss"]).backward()
            if cfg.clip_max_norm > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(main_params, cfg.clip_max_norm)
            scaler.step(optimizer)
            scaler.update()
            # The main loss gives the quantiles a zero gradient (z is rounded with a straight-through
            # estimator around the medians), possibly AMP-scaled: drop it and step on the aux loss alone.
            for p in quantiles:
                p.grad = None
            aux_loss = model.aux_loss()
            aux_loss.backward()
            aux_optimizer.step()
            step += 1
            seen += 1
            for k in ("loss", "bpp", "mse"):
                sums[k] += result[k].item()
            sums["aux"] += aux_loss.item()
            if d.main and (step % cfg.log_every == 0 or step == 1):
                _append_csv(
                    out_dir / STEP_LOG,
                    {
                        "step": step,
                        "epoch": epoch,
                        "lr": optimizer.param_groups[0]["lr"],
                        "loss": f"{result['loss'].item():.6g}",
                        "bpp": f"{result['bpp'].item():.6g}",
                        "mse": f"{result['mse'].item():.6g}",
                        "psnr": f"{result['psnr'].item():.4f}",
                        "aux": f"{aux_loss.item():.6g}",
                        "seconds": f"{time.perf_counter() - t0:.1f}",
                    },
                )
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{result['loss'].item():.4f}",
                    bpp=f"{result['bpp'].item():.3f}",
                    psnr=f"{result['psnr'].item():.2f}",
                )
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
        means = _mean_across_ranks({k: v / max(seen, 1) for k, v in sums.items()}, d, device)
        scheduler.step()
        if d.main:
            val = validate(model, val_loader, criterion, device) if val_loader is not None else None
            score = val["loss"] if val is not None else means["loss"]
            is_best = score < best_loss
            best_loss = min(score, best_loss)
            row = {
                "epoch": epoch,
                "step": step,
                "lr": optimizer.param_groups[0]["lr"],
                **{f"train_{k}": f"{v:.6g}" for k, v in means.items()},
            }
            if val is not None:
                row.update({f"val_{k}": f"{val[k]:.6g}" for k in ("loss", "bpp", "mse", "psnr")})
            row["seconds"] = f"{time.perf_counter() - t0:.1f}"
            _append_csv(out_dir / EPOCH_LOG, row)
            state = {
                "lmbda": cfg.lmbda,
                "metric": cfg.metric,
                "epoch": epoch,
                "step": step,
                "best_loss": best_loss,
                "optimizer": optimizer.state_dict(),
                "aux_optimizer": aux_optimizer.state_dict(),
                "lr_scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "train_config": {
                    k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()
                },
            }
            save_checkpoint(out_dir / "last.pt", model, **state)
            if is_best:
                save_checkpoint(out_dir / "best.pt", model, **state)
        if d.world > 1:
            dist.barrier()
    if bar is not None:
        bar.close()
    model.reset_fingerprint()
    return {
        "epochs_done": epoch + 1,
        "steps": step,
        "best_loss": best_loss,
        "last": str(out_dir / "last.pt"),
        "best": str(out_dir / "best.pt"),
        "model": model,
    }
