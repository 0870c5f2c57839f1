"""Lazy native loading: no compile on import, kernel_status from the cache, one explained fallback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

from lgi_gsplat2d import _backend, kernel_status, native
from lgi_gsplat2d import _reference as ref
from lgi_gsplat2d import functional as F


def test_import_never_compiles(tmp_path):
    env = dict(os.environ, LGI_EXTENSIONS_DIR=str(tmp_path / "cache"))
    code = ("import sys, lgi_gsplat2d; "
            "print('torch.utils.cpp_extension' in sys.modules, sorted(lgi_gsplat2d.kernel_status()))")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False", "['cpu',", "'cuda',", "'native']"]
    assert res.stderr == ""
    assert not (tmp_path / "cache").exists()  # kernel_status looked, and created nothing


def test_kernel_status_reports_the_cpu_build(cpu_ext):
    status = kernel_status()
    assert status["cpu"] == "built"
    assert set(status) == {"cpu", "cuda", "native"} and all(isinstance(v, str) and v for v in status.values())
    if not torch.cuda.is_available() and "built" not in status["cuda"]:
        assert status["cuda"].startswith(("not built", "build failed"))


def test_kernel_status_with_an_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LGI_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(_backend, "_loaded", {})
    monkeypatch.setattr(native, "_state", {})
    status = kernel_status()
    assert status["cpu"] == "not built (builds on first use)"
    assert status["cuda"].startswith("not built")
    assert status["native"] in ("not built (builds on first use)", f"prebuilt, {_backend.cpu_isa()}")
    assert list(tmp_path.iterdir()) == []


def test_entry_point_is_registered():
    eps = {ep.name: ep for ep in entry_points(group="lgi.kernels")}
    assert eps["lgi-gsplat2d"].value == "lgi_gsplat2d._backend:kernel_status"
    assert eps["lgi-gsplat2d"].load() is kernel_status


def test_auto_falls_back_with_one_warning(make_scene, monkeypatch):
    monkeypatch.setattr(_backend, "_loaded", {})
    monkeypatch.setattr(_backend, "_failed", {"cpu": "simulated: the compiler exploded"})
    monkeypatch.setattr(_backend, "_warned", set())
    inputs = make_scene(10, 12, 12, dtype=torch.float32)
    with pytest.warns(RuntimeWarning, match="simulated: the compiler exploded") as record:
        first = F.render(*inputs, 12, 12)
        F.render(*inputs, 12, 12)
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    torch.testing.assert_close(first, ref.render(*inputs, 12, 12))
    with pytest.raises(_backend.BackendUnavailable, match="compiler exploded"):
        F.render(*inputs, 12, 12, backend="cpu")


def test_missing_compiler_is_explained(monkeypatch, tmp_path):
    monkeypatch.setattr(_backend, "_loaded", {})
    monkeypatch.setattr(_backend, "_failed", {})
    monkeypatch.setenv("CXX", "no-such-compiler-lgi")
    monkeypatch.setenv("LGI_EXTENSIONS_DIR", str(tmp_path))
    with pytest.raises(_backend.BackendUnavailable, match="no C\\+\\+ compiler: 'no-such-compiler-lgi'"):
        _backend.load("cpu")
    with pytest.raises(_backend.BackendUnavailable, match="no C\\+\\+ compiler"):
        _backend.load("cpu")  # remembered for the process


def test_float64_cuda_goes_to_the_reference():
    kind, ext = _backend.resolve("auto", torch.device("cuda", 0), torch.float64)
    assert (kind, ext) == ("torch", None)
    with pytest.raises(ValueError, match="float32"):
        _backend.resolve("cuda", torch.device("cuda", 0), torch.float64)


def test_one_build_cache_per_torch_installation_and_source_tree(monkeypatch, tmp_path):
    """Two environments with the same torch version must not share (and rebuild) one build folder."""
    monkeypatch.setenv("LGI_EXTENSIONS_DIR", str(tmp_path))
    here = _backend._spec("cpu").build_dir
    assert here.parent == tmp_path and _backend._spec("cpu").build_dir == here  # stable within one install
    monkeypatch.setattr(torch, "__file__", str(tmp_path / "other-venv" / "torch" / "__init__.py"))
    assert _backend._spec("cpu").build_dir != here
    monkeypatch.undo()
    monkeypatch.setenv("LGI_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(_backend, "_CSRC", tmp_path / "copy" / "csrc")
    (tmp_path / "copy").mkdir()
    shutil.copytree(Path(_backend.__file__).parent / "csrc", tmp_path / "copy" / "csrc")
    assert _backend._spec("cpu").build_dir != here  # identical sources elsewhere: their own folder


def test_a_build_says_so_and_a_wait_says_whose(tmp_path, capsys):
    _backend._announce_build("the CPU kernels of lgi-gsplat2d", tmp_path)
    assert "lgi: building the CPU kernels of lgi-gsplat2d (once per torch installation" in capsys.readouterr().err
    (tmp_path / "lock").touch()  # what torch's cpp_extension holds while another process builds
    _backend._announce_build("the CPU kernels of lgi-gsplat2d", tmp_path)
    assert "waiting for another process building the CPU kernels" in capsys.readouterr().err


def test_load_kernels_says_which_a_render_would_use():
    import lgi_gsplat2d

    assert lgi_gsplat2d.load_kernels("torch", "cpu") == "torch"
    assert lgi_gsplat2d.load_kernels("auto", "cpu") in ("cpu", "torch")  # the reference where no build exists
    with pytest.raises(ValueError, match="backend='cuda' needs CUDA tensors"):
        lgi_gsplat2d.load_kernels("cuda", "cpu")
    with pytest.raises(ValueError, match="backend must be"):
        lgi_gsplat2d.load_kernels("gpu", "cpu")
