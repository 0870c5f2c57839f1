"""The torch-free renderer (lgi_gsplat2d.native): the same pixels as the torch extension, bit for bit,
bands, its checks, and a process that never imports torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from lgi_gsplat2d import native, render


@pytest.fixture(scope="module")
def lib():
    """The native library, built into the test run's cache on first use; a failure fails the tests."""
    return native.library_origin()


def _np(*tensors):
    return [t.numpy() for t in tensors]


@pytest.mark.parametrize("mode", ["sum", "topk", "topk-hard"])
@pytest.mark.parametrize("channels", [1, 3])
def test_native_equals_the_torch_extension_bit_for_bit(lib, cpu_ext, make_scene, mode, channels):
    h, w = 70, 97  # not multiples of the tile
    m, s, r, c = make_scene(600, h, w, channels=channels, dtype=torch.float32, seed=3)
    m[:7] = torch.tensor([-0.2, 1.3])  # a few off-screen, partly visible or culled Gaussians
    s[7:9] = 0.0
    ref = render(m, s, r, c, h, w, mode=mode, k=10, backend="cpu").numpy()
    out = native.render(*_np(m, s, r, c), h, w, mode=mode, k=10)
    assert out.dtype == np.float32 and out.shape == (h, w, channels)
    np.testing.assert_array_equal(out, ref)


def test_bands_are_the_rows_of_the_whole_image(lib, make_scene):
    h, w = 90, 64
    m, s, r, c = _np(*make_scene(500, h, w, dtype=torch.float32, seed=5))
    whole = native.render(m, s, r, c, h, w, mode="topk", k=10)
    bands = [native.render_band(m, s, r, c, h, w, y0, min(16, h - y0), mode="topk", k=10) for y0 in range(0, h, 16)]
    # A band shifts the centres up by y0 in float32 (as lgi_dictco's render_bands does): exact for most
    # Gaussians, an ulp off for some above the band, so equal to float rounding.
    np.testing.assert_allclose(np.concatenate(bands), whole, rtol=0, atol=2e-6)
    first = native.render_band(m, s, r, c, h, w, 0, 16, mode="topk", k=10)
    np.testing.assert_array_equal(first, whole[:16])  # no shift: the same bits


def test_threads_do_not_change_a_pixel(lib, make_scene):
    m, s, r, c = _np(*make_scene(800, 64, 80, dtype=torch.float32, seed=7))
    one = native.render(m, s, r, c, 64, 80, mode="topk", threads=1)
    np.testing.assert_array_equal(native.render(m, s, r, c, 64, 80, mode="topk", threads=2), one)


def test_no_gaussians_render_black(lib):
    z = np.zeros((0, 2), np.float32)
    out = native.render(z, z, np.zeros(0, np.float32), np.zeros((0, 3), np.float32), 20, 30, mode="sum")
    assert out.shape == (20, 30, 3) and not out.any()


def test_bad_arguments_are_refused_before_the_kernel(lib, make_scene):
    m, s, r, c = _np(*make_scene(10, 16, 16, dtype=torch.float32))
    with pytest.raises(ValueError, match="scales must have shape"):
        native.render(m, s[:5], r, c, 16, 16)
    bad = m.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        native.render(bad, s, r, c, 16, 16)
    with pytest.raises(ValueError, match="mode must be"):
        native.render(m, s, r, c, 16, 16, mode="max")
    with pytest.raises(ValueError, match="k must be"):
        native.render(m, s, r, c, 16, 16, k=33)
    with pytest.raises(ValueError, match="must lie inside"):
        native.render_band(m, s, r, c, 16, 16, 10, 8)
    with pytest.raises(native.RenderLimitError, match="2\\^31"):  # 2^33 pixel slots: refused, nothing allocated
        native.render_band(m, s, r, c, 1 << 16, 1 << 16, 0, 1 << 16, mode="topk", k=2)


def test_rendering_imports_no_torch(lib, tmp_path):
    code = ("import sys, json, numpy as np\n"
            "from lgi_gsplat2d import native\n"
            "rng = np.random.default_rng(0)\n"
            "m = rng.random((50, 2), np.float32); s = np.full((50, 2), 0.05, np.float32)\n"
            "img = native.render(m, s, np.zeros(50, np.float32), rng.random((50, 3), np.float32), 32, 32)\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'shape': img.shape, 'origin': native.library_origin()}))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    report = json.loads(res.stdout)
    assert report["torch"] is False and report["shape"] == [32, 32, 3]
    assert report["origin"].split(",")[0] in ("prebuilt", "built")


def test_no_compiler_is_one_clear_error(tmp_path):
    env = dict(os.environ, LGI_EXTENSIONS_DIR=str(tmp_path), CXX="no-such-compiler-lgi", LGI_PREBUILT="0")
    code = ("from lgi_gsplat2d import native\n"
            "print(native.available(), native.status())\n"
            "try:\n    native.library_origin()\nexcept native.BackendUnavailable as e:\n    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    first, second = res.stdout.strip().splitlines()
    assert first == "False not built (builds on first use)"
    assert "no C++ compiler: 'no-such-compiler-lgi' is not on PATH" in second


def test_status_reports_the_cache(lib, tmp_path, monkeypatch):
    assert native.status().startswith("loaded (")
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("LGI_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv("LGI_PREBUILT", "0")
    assert native.status() == "not built (builds on first use)"
    assert list(tmp_path.iterdir()) == []  # status looks, and creates nothing
