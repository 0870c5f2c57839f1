"""Whole-image renders of large images, in bands of rows, so that their memory is a band's.

A top-K render keeps, for its backward pass, K Gaussian indices and weights for every pixel: 80 bytes a
pixel at K = 10, 1.9 GB for a 24-megapixel photo, with the image, its gradient and the loss's buffers on
top. The encoder's stages after the fit (sensitivity, re-fits, fine-tuning, the final render) and
``lgi fit`` render the whole image at every step. Above :data:`BAND_PIXELS` pixels they render it in
bands of rows instead, one band's forward and backward at a time: the Gaussians are projected once,
each band rasterizes those that meet its rows (:func:`lgi_gsplat2d.rasterize_rows`), and the bands'
gradients, summed, go back through the projection once (:func:`backprop_bands`).

This changes the arithmetic, not the result: the L2 and L1 losses are sums over pixels, so the
gradients of the bands' losses add up to the whole image's (to float rounding; the tests compare them),
and a sensitivity summed over pixels is the sum of the bands' sums. Losses with windows across rows
(SSIM, MS-SSIM, LPIPS) render whole, as before. Images of at most :data:`BAND_PIXELS` pixels (Kodak,
the 2.8-megapixel CLIC photos) render in one piece, bit for bit as before.

The decoder plans its bands differently on purpose (:meth:`lgi_dictco.gauss.DecodeCost.bands`): it
renders once, without autograd, from parameters it priced before drawing, so its bands follow the
renderer's buffers and the priced tile intersections of each row of tiles. A training step keeps a band's
autograd graph as well and runs thousands of times, so its bands are a fixed pixel count, planned without
pricing anything. Both cut whole rows of the rasterizer's tiles (:data:`lgi_gsplat2d.TILE`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lgi_gsplat2d import TILE

#: Renders of more pixels than this go in bands of at most this many pixels (whole rows, a multiple of
#: the rasterizer's 16-pixel tiles): about 0.5 GB of top-K buffers and images a band at K = 10.
BAND_PIXELS = 1 << 22

Rows = tuple[int, int]


def row_bands(height: int, width: int, band_pixels: int | None = None) -> list[Rows]:
    """The bands of rows ``[(y0, y1), ...]`` a ``height`` x ``width`` render goes in: one, ``(0, height)``,
    up to ``band_pixels`` pixels (None: :data:`BAND_PIXELS`), else bands of at most that many."""
    limit = BAND_PIXELS if band_pixels is None else band_pixels
    if height * width <= limit:
        return [(0, height)]
    rows = max(TILE, limit // width // TILE * TILE)
    return [(y, min(y + rows, height)) for y in range(0, height, rows)]


def backprop_bands(params: dict[str, torch.Tensor], height: int, width: int, mode: str, k: int, backend: str,
                   bands: list[Rows], band_loss: Callable[[Rows, torch.Tensor], torch.Tensor]):
    """Project the Gaussians once, then rasterize the image band by band and backpropagate each band's
    ``band_loss(rows, band)`` (band [y1 - y0, W, C]) into the projected values, one band's buffers at a time.

    Returns ``(projected, grads)``: the projection's outputs (xys, conics, colors), still in the graph of
    ``params``, and the summed gradients of the bands' losses with respect to them. The caller finishes
    with ``torch.autograd.backward(projected, grads)`` (or ``torch.autograd.grad``). Each band works on
    the Gaussians that meet its rows only: its cost beyond the rasterizer's is in those, not in all N.
    """
    from lgi_gsplat2d import gaussians_in_rows, project_gaussians_2d_scale_rot, rasterize_rows, row_spans

    xys, radii, conics, _ = project_gaussians_2d_scale_rot(params["means"], params["scales"], params["rotations"],
                                                           height, width, backend=backend)
    projected = (xys, conics, params["colors"])
    values = [t.detach() for t in projected]
    grads = [torch.zeros_like(t) for t in values]
    spans = row_spans(values[0], radii, height, width)
    for rows in bands:
        idx = gaussians_in_rows(spans, rows)
        leaves = [v[idx].requires_grad_(t.requires_grad) for v, t in zip(values, projected)]
        band = rasterize_rows(leaves[0], radii[idx], leaves[1], leaves[2], width, rows, mode=mode, k=k,
                              backend=backend)
        band_loss(rows, band).backward()
        for g, leaf in zip(grads, leaves):
            if leaf.grad is not None:
                g.index_add_(0, idx, leaf.grad)
        del band, leaves
    return projected, grads


def backward_in_bands(params: dict[str, torch.Tensor], height: int, width: int, mode: str, k: int, backend: str,
                      target_hwc: torch.Tensor, pixel_sum, bands: list[Rows],
                      keep: torch.Tensor | None = None) -> tuple[float, float]:
    """Backpropagate the mean-over-values loss of the render of ``params`` (``means``, ``scales``,
    ``rotations``, ``colors``, in the graph of the leaves to train) drawn band by band.

    Args:
        params, height, width, mode, k, backend: the Gaussians and how they render.
        target_hwc: [H, W, C] target.
        pixel_sum: ``(render, target) -> sum over the band's values`` of the loss
            (:func:`lgi_train.losses.pixel_sum_for`).
        bands: from :func:`row_bands`.
        keep: a [C, H, W] tensor that receives the render (detached), or None.

    Returns:
        (the loss, the whole image's mean over values; the sum of the squared errors of the render
        clamped to [0, 1]); the gradients accumulate in the leaves' ``.grad``.
    """
    numel = target_hwc.numel()
    totals = [0.0, 0.0]

    def band_loss(rows: Rows, band: torch.Tensor) -> torch.Tensor:
        y0, y1 = rows
        t = target_hwc[y0:y1]
        loss = pixel_sum(band, t) / numel
        totals[0] += float(loss.detach())
        totals[1] += clamped_sse(band, t)
        if keep is not None:
            keep[:, y0:y1] = band.detach().permute(2, 0, 1)
        return loss

    projected, grads = backprop_bands(params, height, width, mode, k, backend, bands, band_loss)
    live = [(t, g) for t, g in zip(projected, grads) if t.requires_grad]
    if live:
        torch.autograd.backward([t for t, _ in live], [g for _, g in live])
    return totals[0], totals[1]


@torch.no_grad()
def clamped_sse(render_hwc: torch.Tensor, target_hwc: torch.Tensor) -> float:
    """Σ (clamp(render, 0, 1) − target)² of two [h, W, C] images."""
    d = render_hwc.detach().clamp(0, 1).sub_(target_hwc).reshape(-1)
    return float(torch.dot(d, d))
