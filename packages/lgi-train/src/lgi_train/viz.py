"""Pictures of a fit: the Gaussians as ellipses over the image, where growth added them, error maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _figure(width: int, height: int, max_inches: float = 12.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = max_inches / max(width, height)
    fig = plt.figure(figsize=(width * scale, height * scale), dpi=max(100, int(max(width, height) / max_inches)))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    return fig, ax, plt


def visualize_gaussians(image: np.ndarray, xy: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor,
                        path: Path, sigmas: float = 1.0, max_gaussians: int = 20000) -> None:
    """Each Gaussian's ``sigmas``-σ ellipse (in pixels) drawn over a dimmed ``image`` [H, W, 3]."""
    from matplotlib.collections import EllipseCollection

    h, w = image.shape[:2]
    fig, ax, plt = _figure(w, h)
    ax.imshow(image * 0.5 + 0.25, extent=(0, w, h, 0), interpolation="nearest")
    n = min(xy.shape[0], max_gaussians)
    # Unit-square covariance → pixel covariance, then its axes (the unit-square rotation is not the
    # pixel rotation when W != H).
    c, s = torch.cos(rotations[:n]).double(), torch.sin(rotations[:n]).double()
    r = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    cov = r @ torch.diag_embed(scales[:n].double() ** 2) @ r.transpose(1, 2)
    a = torch.diag(torch.tensor([w, h], dtype=torch.float64))
    evals, evecs = torch.linalg.eigh(a @ cov @ a)
    widths = 2 * sigmas * evals.clamp_min(0).sqrt()
    angles = torch.rad2deg(torch.atan2(evecs[:, 1, 1], evecs[:, 0, 1]))
    centers = (xy[:n].double() * torch.tensor([w, h], dtype=torch.float64)).numpy()
    coll = EllipseCollection(widths[:, 1].numpy(), widths[:, 0].numpy(), angles.numpy(), units="xy",
                             offsets=centers, offset_transform=ax.transData, facecolors="none",
                             edgecolors=(1.0, 0.85, 0.1, 0.6), linewidths=0.4)
    ax.add_collection(coll)
    fig.savefig(path)
    plt.close(fig)


def visualize_added_gaussians(image: np.ndarray, initial_xy: torch.Tensor,
                              added: list[tuple[int, torch.Tensor]], path: Path) -> None:
    """Initial positions in white; each growth batch in its own colour, labelled by step."""
    h, w = image.shape[:2]
    fig, ax, plt = _figure(w, h)
    ax.imshow(image * 0.6 + 0.2, extent=(0, w, h, 0), interpolation="nearest")
    ax.scatter(initial_xy[:, 0] * w, initial_xy[:, 1] * h, s=1.0, c="white", linewidths=0, label="initial")
    cmap = plt.get_cmap("autumn")
    for i, (step, xy) in enumerate(added):
        ax.scatter(xy[:, 0] * w, xy[:, 1] * h, s=2.0, color=cmap(i / max(1, len(added) - 1)), linewidths=0,
                   label=f"step {step}")
    if added:
        ax.legend(loc="lower right", fontsize=7, markerscale=4, framealpha=0.6)
    fig.savefig(path)
    plt.close(fig)


def error_map(render: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 heat map of the per-pixel absolute error (mean over channels), scaled to its
    99th percentile so structure stays visible."""
    import matplotlib

    err = np.abs(render.astype(np.float64) - target.astype(np.float64)).mean(axis=2)
    top = max(float(np.percentile(err, 99)), 1e-6)
    rgba = matplotlib.colormaps["inferno"](np.clip(err / top, 0, 1))
    return (rgba[:, :, :3] * 255).round().astype(np.uint8)
