"""Input checks, backend selection and fallback, the build cache, import hygiene, kernel_status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from importlib.metadata import entry_points

import numpy as np
import pytest
import torch

import lgi_fused_ssim
from lgi_fused_ssim import KernelUnavailableError, _backend, fused_ssim, fused_ssim_map, ssim_map_reference


def _img(*shape, dtype=torch.float32, device="cpu"):
    return torch.rand(shape, dtype=dtype, device=device)


@pytest.mark.parametrize(
    "img1,img2,kwargs,match",
    [
        (_img(3, 16, 16), _img(3, 16, 16), {}, "4 dimensions"),
        (_img(1, 1, 3, 16, 16), _img(1, 1, 3, 16, 16), {}, "4 dimensions"),
        (_img(1, 3, 16, 16), _img(1, 3, 16, 17), {}, "same shape"),
        (_img(1, 3, 16, 16), _img(2, 3, 16, 16), {}, "same shape"),
        ((_img(1, 3, 16, 16) * 255).to(torch.uint8), _img(1, 3, 16, 16), {}, "float32"),
        (_img(1, 3, 16, 16), torch.ones(1, 3, 16, 16, dtype=torch.int64), {}, "float32"),
        (_img(1, 3, 16, 16, dtype=torch.float16), _img(1, 3, 16, 16, dtype=torch.float16), {}, "float32"),
        (_img(1, 3, 16, 16), _img(1, 3, 16, 16, dtype=torch.float64), {}, "same dtype"),
        (_img(1, 3, 16, 16), _img(1, 3, 16, 16, device="meta"), {}, "same device"),
        (_img(1, 3, 10, 16), _img(1, 3, 10, 16), {}, "at least 11x11"),
        (_img(1, 3, 16, 10), _img(1, 3, 16, 10), {"padding": "valid"}, "at least 11x11"),
        (_img(0, 3, 16, 16), _img(0, 3, 16, 16), {}, "empty"),
        (_img(1, 3, 16, 16), _img(1, 3, 16, 16), {"padding": "full"}, "padding"),
        (_img(1, 3, 16, 16), _img(1, 3, 16, 16), {"backend": "mps"}, "backend"),
        (_img(1, 3, 16, 16), _img(1, 3, 16, 16), {"backend": "cuda"}, "needs CUDA tensors"),
        (_img(1, 3, 16, 16, dtype=torch.float64), _img(1, 3, 16, 16, dtype=torch.float64), {"backend": "cpu"},
         "float64"),
        (np.zeros((1, 3, 16, 16), np.float32), _img(1, 3, 16, 16), {}, "torch.Tensor"),
    ],
)
def test_bad_inputs_raise_value_error(img1, img2, kwargs, match):
    for fn in (fused_ssim, fused_ssim_map):
        with pytest.raises(ValueError, match=match):
            fn(img1, img2, **kwargs)


def test_float64_auto_uses_the_reference_silently(image_pair):
    x, y = image_pair((1, 2, 20, 20), dtype=torch.float64)
    x.requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fused_ssim(x, y)
    assert out.dtype == torch.float64
    assert torch.equal(out, ssim_map_reference(x, y).mean())
    out.backward()
    assert x.grad is not None


def test_torch_backend_train_false(image_pair):
    x, y = image_pair((1, 3, 16, 16))
    x.requires_grad_(True)
    out = fused_ssim(x, y, train=False, backend="torch")
    assert out.grad_fn.saved_tensors == ()
    assert torch.equal(out, ssim_map_reference(x, y).mean())
    with pytest.raises(RuntimeError, match="train=False"):
        out.backward()


def test_auto_on_cpu_float32_uses_the_kernel(cpu_ops, image_pair):
    x, y = image_pair((1, 3, 24, 24))
    x.requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fused_ssim(x, y)
    assert type(out.grad_fn).__name__ == "FusedSSIMBackward"
    assert torch.equal(out, fused_ssim(x, y, backend="cpu"))


@pytest.fixture
def broken_build(monkeypatch):
    """Every build fails (as with no compiler); the module caches start empty and are restored."""
    monkeypatch.setattr(_backend, "_MODULES", {})
    monkeypatch.setattr(_backend, "_FAILURES", {})
    monkeypatch.setattr(_backend, "_WARNED", set())
    calls = []

    def fail(kind):
        calls.append(kind)
        raise OSError("c++: command not found")

    monkeypatch.setattr(_backend, "_compile", fail)
    return calls


def test_failed_build_warns_once_then_uses_the_reference(broken_build, image_pair):
    x, y = image_pair((1, 3, 20, 20))
    x.requires_grad_(True)
    with pytest.warns(RuntimeWarning, match="c\\+\\+: command not found") as record:
        first = fused_ssim(x, y)
        second = fused_ssim_map(x, y)
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    assert torch.equal(first, ssim_map_reference(x, y).mean())
    assert torch.equal(second, ssim_map_reference(x, y))
    first.backward()
    assert x.grad is not None
    assert broken_build == ["cpu"]  # the failure is cached: built once, not once per call
    with pytest.raises(KernelUnavailableError, match="cpu kernel could not be built.*command not found"):
        fused_ssim(x, y, backend="cpu")
    assert broken_build == ["cpu"]
    assert lgi_fused_ssim.kernel_status()["cpu"].startswith("build failed in this process")


def test_build_directory_is_named_by_a_hash_under_lgi_extensions_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LGI_EXTENSIONS_DIR", str(tmp_path))
    cpu = _backend.build_directory("cpu")
    assert cpu.parent == tmp_path
    name, digest = cpu.name.rsplit("-", 1)
    assert name == "lgi_fused_ssim_cpu" and len(digest) == 12
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0")
    cuda_80 = _backend.build_directory("cuda")
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    assert _backend.build_directory("cuda") != cuda_80
    assert _backend.build_directory("cpu") == cpu  # CUDA settings do not touch the CPU build
    # One cache per torch installation: another environment's torch (same version) builds elsewhere.
    monkeypatch.setattr(torch, "__file__", str(tmp_path / "other-venv" / "torch" / "__init__.py"))
    assert _backend.build_directory("cpu") != cpu


def test_kernel_status_reads_the_cache(cpu_ops):
    assert lgi_fused_ssim.kernel_status()["cpu"] == "built"
    assert _backend.build_directory("cpu").is_dir()


def test_kernel_status_is_registered_as_an_entry_point():
    (ep,) = [ep for ep in entry_points(group="lgi.kernels") if ep.name == "lgi-fused-ssim"]
    assert ep.value == "lgi_fused_ssim._backend:kernel_status"
    status = ep.load()()
    assert set(status) == {"cpu", "cuda"} and all(isinstance(v, str) for v in status.values())


def test_import_and_kernel_status_never_compile_or_print(tmp_path):
    code = (
        "import json, lgi_fused_ssim\n"
        "print(json.dumps(lgi_fused_ssim.kernel_status()))\n"
    )
    env = {**os.environ, "LGI_EXTENSIONS_DIR": str(tmp_path / "ext")}
    done = subprocess.run([sys.executable, "-c", "import lgi_fused_ssim"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    status = json.loads(done.stdout)
    assert status["cpu"] == "not built"
    assert status["cuda"].startswith("not built")
    assert not (tmp_path / "ext").exists()
