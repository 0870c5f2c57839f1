"""CUDA: a compile-and-link check wherever nvcc exists, and runtime tests (marked cuda) on a GPU."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from lgi_fused_ssim import fused_ssim, fused_ssim_map, ssim_map_reference

SHAPES = [(1, 3, 32, 48), (2, 1, 11, 11), (3, 3, 37, 53), (1, 1, 70, 17), (2, 3, 23, 100)]
PADDINGS = ["same", "valid"]


def _cuda_home() -> str | None:
    """The real toolkit root: $CUDA_HOME, else TOP= from `nvcc --dryrun -v` (nvcc may be a wrapper)."""
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    done = subprocess.run([nvcc, "--dryrun", "-v", "x.cu"], capture_output=True, text=True, timeout=60)
    match = re.search(r"^#\$ TOP=(.+)$", done.stdout + done.stderr, re.MULTILINE)
    return os.path.realpath(match.group(1).strip()) if match else None


def test_cuda_extension_compiles_and_links():
    """Catches CUDA compile and link errors on machines without a GPU (once; the build is cached)."""
    if torch.version.cuda is None:
        pytest.skip("this torch has no CUDA support")
    home = _cuda_home()
    if home is None:
        pytest.skip("no nvcc on PATH")
    env = {**os.environ, "CUDA_HOME": home}
    if not torch.cuda.is_available():
        env.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    code = (
        "from lgi_fused_ssim import _backend, kernel_status\n"
        "m = _backend.build('cuda')\n"
        "print(sorted(n for n in dir(m) if not n.startswith('_')))\n"
        "print(kernel_status()['cuda'])\n"
    )
    # A fresh interpreter: torch reads CUDA_HOME once, when cpp_extension is first imported.
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    names, status = done.stdout.strip().splitlines()[-2:]
    assert names == "['backward', 'forward']"
    assert status == "built"


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _pair(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=gen)
    y = (x + 0.15 * torch.randn(shape, generator=gen)).clamp(0, 1)
    return x.cuda(), y.cuda()


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("shape", SHAPES)
def test_cuda_matches_reference(shape, padding):
    x, y = _pair(shape)
    x.requires_grad_(True)
    got_map = fused_ssim_map(x, y, padding, backend="cuda")
    want_map = ssim_map_reference(x.double(), y.double(), padding)
    torch.testing.assert_close(got_map.double(), want_map, rtol=0, atol=1e-5)

    mean = fused_ssim(x, y, padding, backend="cuda")
    want = ssim_map_reference(x, y, padding).mean()
    assert abs(mean.item() - want.item()) < 1e-6
    (g,) = torch.autograd.grad(mean, x)
    (g_ref,) = torch.autograd.grad(want, x)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5 * g_ref.abs().max().item())

    weights = torch.randn_like(want_map).float()
    (g,) = torch.autograd.grad((fused_ssim_map(x, y, padding, backend="cuda") * weights).sum(), x)
    (g_ref,) = torch.autograd.grad((ssim_map_reference(x, y, padding) * weights).sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5 * g_ref.abs().max().item())


@cuda
@pytest.mark.cuda
def test_cuda_matches_the_cpu_kernel(cpu_ops):
    x, y = _pair((2, 3, 64, 80), seed=1)
    got = fused_ssim_map(x, y, backend="cuda").cpu()
    want = fused_ssim_map(x.cpu(), y.cpu(), backend="cpu")
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@cuda
@pytest.mark.cuda
def test_cuda_bitwise_deterministic():
    x, y = _pair((2, 3, 131, 77), seed=2)
    x.requires_grad_(True)
    runs = []
    for _ in range(3):
        mean = fused_ssim(x, y, backend="cuda")
        runs.append((mean.detach(), *torch.autograd.grad(mean, x)))
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))


@cuda
@pytest.mark.cuda
def test_cuda_auto_dispatch_and_train_false():
    x, y = _pair((1, 3, 40, 40), seed=3)
    x.requires_grad_(True)
    out = fused_ssim(x, y)
    assert out.device.type == "cuda"
    assert torch.equal(out, fused_ssim(x, y, backend="cuda"))
    out = fused_ssim(x, y, train=False)
    assert out.grad_fn.saved_tensors == ()
    with pytest.raises(RuntimeError, match="train=False"):
        out.backward()
    with pytest.raises(ValueError, match="same device"):
        fused_ssim(x, y.cpu())


def test_a_wrong_cuda_home_is_explained(monkeypatch, tmp_path):
    """The wrapper-nvcc trap (CUDA_HOME guessed as /usr/local) fails early with the fix in the message."""
    from torch.utils import cpp_extension

    from lgi_fused_ssim import KernelUnavailableError, _backend

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nvcc").write_text("#!/bin/sh\n")
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(tmp_path))
    with pytest.raises(KernelUnavailableError, match="not a CUDA toolkit root.*TOP="):
        _backend._check_cuda_toolkit(cpp_extension)
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", None)
    with pytest.raises(KernelUnavailableError, match="no CUDA toolkit found"):
        _backend._check_cuda_toolkit(cpp_extension)
    (tmp_path / "lib64").mkdir()
    (tmp_path / "lib64" / "libcudart.so").write_text("")
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(tmp_path))
    _backend._check_cuda_toolkit(cpp_extension)
