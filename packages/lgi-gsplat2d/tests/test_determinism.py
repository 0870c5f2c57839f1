"""Native results are bitwise reproducible, whatever the number of threads."""

from __future__ import annotations

import pytest
import torch

from lgi_gsplat2d import functional as F


def _run(inputs, h, w, mode, threads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        leaves = [t.clone().requires_grad_(True) for t in inputs]
        out = F.render(*leaves, h, w, mode=mode, k=8, backend="cpu")
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        return [out.detach()] + [t.grad for t in leaves]
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("mode", ["sum", "topk", "topk-hard"])
def test_bitwise_identical_across_runs_and_threads(cpu_ext, make_scene, mode):
    h, w = 96, 80
    inputs = make_scene(600, h, w, dtype=torch.float32, seed=4)
    first = _run(inputs, h, w, mode, 2)
    for threads in (2, 1, 3):
        again = _run(inputs, h, w, mode, threads)
        for a, b in zip(first, again):
            assert torch.equal(a, b), f"differs with {threads} threads"
