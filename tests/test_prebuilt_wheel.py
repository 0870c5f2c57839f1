"""Platform wheels with compiled kernels (tools/hatch_prebuild.py through tools/wheelhouse.py --prebuilt).

The default run builds the lgi-fused-ssim wheel (one CPU library, about a minute) and checks that,
installed elsewhere, it loads its kernel with no compiler and an empty build cache and computes what
the JIT build computes, bit for bit. The slow test does the same for lgi-gsplat2d's three CPU variants.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _wheelhouse():
    spec = importlib.util.spec_from_file_location("wheelhouse", ROOT / "tools" / "wheelhouse.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_and_install(tmp_path: Path, package: str, monkeypatch) -> tuple[Path, Path]:
    pytest.importorskip("hatchling")
    pytest.importorskip("setuptools")
    monkeypatch.setenv("LGI_PREBUILD_CUDA", "0")  # the CUDA build takes minutes; test_cuda compiles it
    (wheel,) = _wheelhouse().build_wheels(tmp_path / "wheels", [package], prebuilt=True)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, timeout=300)
    return wheel, site


def _run_installed(site: Path, tmp_path: Path, code: str, **env) -> subprocess.CompletedProcess:
    child_env = dict(os.environ, PYTHONPATH=str(site), CXX="/nonexistent/no-compiler",
                     LGI_EXTENSIONS_DIR=str(tmp_path / "empty-cache"), **env)
    res = subprocess.run([sys.executable, "-c", code], env=child_env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not (tmp_path / "empty-cache").exists()  # nothing was JIT-built
    return res


def _metadata(wheel: Path) -> tuple[str, str]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        info = next(n for n in zf.namelist() if n.endswith(".dist-info/WHEEL"))
        return zf.read(meta).decode(), zf.read(info).decode()


def test_fused_ssim_wheel_carries_its_kernel(tmp_path, monkeypatch):
    from lgi_fused_ssim import fused_ssim

    wheel, site = _build_and_install(tmp_path, "lgi-fused-ssim", monkeypatch)
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert wheel.name.startswith("lgi_fused_ssim-") and f"-{tag}-{tag}-linux_" in wheel.name
    meta, info = _metadata(wheel)
    assert f"Requires-Dist: torch=={torch.__version__.split('+')[0]}" in meta
    assert "Root-Is-Purelib: false" in info
    manifest = json.loads((site / "lgi_fused_ssim" / "_prebuilt" / "manifest.json").read_text())
    assert manifest["torch"] == torch.__version__ and set(manifest["cpu"]) == {"generic"}

    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(1, 3, 40, 52, generator=g), torch.rand(1, 3, 40, 52, generator=g)
    torch.save((x, y), tmp_path / "pair.pt")
    code = ("import torch, lgi_fused_ssim\n"
            "from lgi_fused_ssim import fused_ssim, kernel_status\n"
            "x, y = torch.load('pair.pt')\n"
            "x.requires_grad_(True)\n"
            "v = fused_ssim(x, y, backend='cpu'); v.backward()\n"
            "torch.save((v.detach(), x.grad), 'out.pt')\n"
            "print(lgi_fused_ssim.__file__); print(kernel_status()['cpu'])\n")
    res = _run_installed(site, tmp_path, code)
    where, status = res.stdout.strip().splitlines()[-2:]
    assert Path(where).parent == site / "lgi_fused_ssim"
    assert status == f"prebuilt, portable x86-64, torch {torch.__version__}"
    value, grad = torch.load(tmp_path / "out.pt")
    x.requires_grad_(True)
    jit = fused_ssim(x, y, backend="cpu")  # this process: the JIT build of the same sources and flags
    jit.backward()
    assert torch.equal(value, jit.detach()) and torch.equal(grad, x.grad)

    # Built for another torch: the prebuilt kernel is not used (and with no compiler, the build fails clearly).
    manifest_path = site / "lgi_fused_ssim" / "_prebuilt" / "manifest.json"
    manifest_path.write_text(json.dumps({**manifest, "torch": "0.0.1"}))
    res = _run_installed(site, tmp_path, "from lgi_fused_ssim import kernel_status; print(kernel_status()['cpu'])")
    assert res.stdout.strip() == "not built"


@pytest.mark.slow
def test_gsplat2d_wheel_carries_every_cpu_variant(tmp_path, monkeypatch):
    from lgi_gsplat2d import _backend, render

    wheel, site = _build_and_install(tmp_path, "lgi-gsplat2d", monkeypatch)
    manifest = json.loads((site / "lgi_gsplat2d" / "_prebuilt" / "manifest.json").read_text())
    assert set(manifest["cpu"]) == set(_backend.ISAS) == set(manifest["native"])
    g = torch.Generator().manual_seed(5)
    n = 300
    scene = (torch.rand(n, 2, generator=g), 0.01 + 0.05 * torch.rand(n, 2, generator=g),
             torch.rand(n, generator=g) * 6.28, torch.rand(n, 3, generator=g))
    torch.save(scene, tmp_path / "scene.pt")
    jit = render(*scene, 48, 64, backend="cpu")
    code = ("import torch, sys\nfrom lgi_gsplat2d import render, kernel_status\n"
            "img = render(*torch.load('scene.pt'), 48, 64, backend='cpu')\n"
            "torch.save(img, 'img.pt'); print(kernel_status()['cpu'])\n")
    runnable = [isa for isa, (needs, _) in _backend.ISAS.items() if all(f in _backend._cpu_flags() for f in needs)]
    for isa in runnable:
        res = _run_installed(site, tmp_path, code, LGI_KERNEL_ISA=isa)
        assert res.stdout.strip().splitlines()[-1].startswith(f"prebuilt, {isa}, torch ")
        img = torch.load(tmp_path / "img.pt")
        if isa == _backend.cpu_isa():
            assert torch.equal(img, jit)  # the JIT build of this CPU's variant: the same flags
        else:
            torch.testing.assert_close(img, jit, atol=1e-5, rtol=1e-5)

    # The torch-free renderer of the decoder, from the same wheel: no torch imported, the same pixels.
    np_scene = [t.numpy() for t in scene]
    np.save(tmp_path / "scene.npy", np.concatenate([np_scene[0], np_scene[1], np_scene[2][:, None], np_scene[3]], 1))
    code = ("import sys, numpy as np\nfrom lgi_gsplat2d import native\n"
            "a = np.load('scene.npy')\n"
            "img = native.render(a[:, 0:2], a[:, 2:4], a[:, 4], a[:, 5:8], 48, 64)\n"
            "np.save('native.npy', img); print('torch' in sys.modules, native.library_origin())\n")
    for isa in runnable:
        res = _run_installed(site, tmp_path, code, LGI_KERNEL_ISA=isa)
        assert res.stdout.strip().splitlines()[-1] == f"False prebuilt, {isa}"
        img = torch.from_numpy(np.load(tmp_path / "native.npy"))
        if isa == _backend.cpu_isa():
            assert torch.equal(img, jit)
        else:
            torch.testing.assert_close(img, jit, atol=1e-5, rtol=1e-5)
