"""Prebuilt kernels (platform wheels): the CPU variant chosen by the CPU, the manifest's checks, JIT fallback.

A wheel's ``_prebuilt/`` folder is stood in for by a temporary one holding a copy of the JIT-built
library under the manifest's names; building real wheels is tests/test_prebuilt_wheel.py's job.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

from lgi_gsplat2d import _backend, kernel_status
from lgi_gsplat2d import _reference as ref
from lgi_gsplat2d import functional as F


@pytest.fixture
def fresh(monkeypatch):
    """A process state where nothing is loaded yet (restored afterwards)."""
    monkeypatch.setattr(_backend, "_loaded", {})
    monkeypatch.setattr(_backend, "_failed", {})
    monkeypatch.setattr(_backend, "_origin", {})
    monkeypatch.delenv("LGI_KERNEL_ISA", raising=False)
    monkeypatch.delenv("LGI_PREBUILT", raising=False)


@pytest.fixture
def fake_prebuilt(cpu_ext, tmp_path, monkeypatch, fresh):
    """A ``_prebuilt`` folder whose every CPU variant is a copy of the JIT-built library."""
    folder = tmp_path / "_prebuilt"
    folder.mkdir()
    library = Path(cpu_ext.__file__)
    shutil.copy2(library, folder / library.name)  # the module name is the file's stem: lgi_gsplat2d_cpu
    manifest = {"torch": torch.__version__, "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
                "sources": {"cpu": _backend.sources_digest("cpu")},
                "cpu": {isa: library.name for isa in _backend.ISAS}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(_backend, "_PREBUILT", folder)
    # No JIT behind the test's back: a build attempt fails at once.
    monkeypatch.setenv("CXX", "no-such-compiler-lgi")
    return folder, manifest


def _rewrite(folder: Path, manifest: dict, **changes) -> None:
    (folder / "manifest.json").write_text(json.dumps({**manifest, **changes}))


def test_the_best_variant_this_cpu_runs_is_chosen(monkeypatch, fresh):
    monkeypatch.setattr(_backend, "_cpu_flags", lambda: frozenset({"sse2", "avx2"}))
    assert _backend.cpu_isa() == "avx2"
    monkeypatch.setattr(_backend, "_cpu_flags", lambda: frozenset({"avx2", *_backend._AVX512}))
    assert _backend.cpu_isa() == "avx512"
    monkeypatch.setattr(_backend, "_cpu_flags", lambda: frozenset())
    assert _backend.cpu_isa() == "generic"
    assert not any(flag.startswith("-mavx") for flag in _backend._cpu_cflags())


def test_a_forced_variant_is_checked_against_the_cpu(monkeypatch, fresh):
    monkeypatch.setattr(_backend, "_cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setenv("LGI_KERNEL_ISA", "generic")
    assert _backend.cpu_isa() == "generic"
    monkeypatch.setenv("LGI_KERNEL_ISA", "avx512")
    with pytest.raises(_backend.BackendUnavailable, match="this CPU lacks avx512f"):
        _backend.cpu_isa()
    with pytest.raises(_backend.BackendUnavailable, match="this CPU lacks avx512f"):
        _backend.load("cpu")
    assert kernel_status()["cpu"].startswith("unavailable: LGI_KERNEL_ISA=avx512")  # reported, not raised
    monkeypatch.setenv("LGI_KERNEL_ISA", "sse9")
    with pytest.raises(_backend.BackendUnavailable, match="expected one of avx512, avx2, generic"):
        _backend.cpu_isa()


def test_the_jit_build_of_each_variant_has_its_own_cache(monkeypatch, tmp_path, fresh):
    monkeypatch.setenv("LGI_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(_backend, "_cpu_flags", lambda: frozenset({"avx2", *_backend._AVX512}))
    folders = set()
    for isa in _backend.ISAS:
        monkeypatch.setenv("LGI_KERNEL_ISA", isa)
        folders.add(_backend._spec("cpu").build_dir)
    assert len(folders) == 3


def test_prebuilt_kernels_load_without_a_compiler(fake_prebuilt, make_scene):
    folder, _ = fake_prebuilt
    isa = _backend.cpu_isa()
    assert kernel_status()["cpu"] == f"prebuilt, {isa}, torch {torch.__version__}"
    module = _backend.load("cpu")
    # (Python keeps one extension module per name: this copy shares the JIT module's name, so its
    # __file__ stays the first one's; the spec shows where it was loaded from.)
    assert Path(module.__spec__.origin).parent == folder
    assert kernel_status()["cpu"] == f"prebuilt, {isa}, torch {torch.__version__}"
    inputs = make_scene(40, 20, 24, dtype=torch.float32)
    torch.testing.assert_close(F.render(*inputs, 20, 24, backend="cpu"), ref.render(*inputs, 20, 24),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("change,why", [
    ({"torch": "0.0.1"}, "prebuilt for torch 0.0.1"),
    ({"python": "3.0"}, "Python 3.0"),
    ({"sources": {"cpu": "0" * 16}}, "built from other sources"),
    ({"cpu": {}}, "have no CPU build"),
    ({"cpu": {"avx512-only-here": "x.so"}}, "have no (avx512|avx2|generic) variant"),
])
def test_a_manifest_that_does_not_fit_falls_back_to_jit(fake_prebuilt, change, why):
    folder, manifest = fake_prebuilt
    _rewrite(folder, manifest, **change)
    library, _, reason = _backend._prebuilt("cpu")
    assert library is None
    assert re.search(why, reason), reason
    assert not kernel_status()["cpu"].startswith("prebuilt")
    with pytest.raises(_backend.BackendUnavailable, match="no C\\+\\+ compiler"):  # it went to the JIT build
        _backend.load("cpu")


def test_lgi_prebuilt_0_ignores_them(fake_prebuilt, monkeypatch):
    monkeypatch.setenv("LGI_PREBUILT", "0")
    assert _backend._prebuilt("cpu")[2] == "LGI_PREBUILT=0"
    with pytest.raises(_backend.BackendUnavailable, match="no C\\+\\+ compiler"):
        _backend.load("cpu")


def test_an_unreadable_manifest_is_named(fake_prebuilt):
    folder, _ = fake_prebuilt
    (folder / "manifest.json").write_text("{not json")
    library, _, reason = _backend._prebuilt("cpu")
    assert library is None and "unreadable" in reason and "manifest.json" in reason


@pytest.mark.parametrize("archs,caps,runs", [
    ("8.0;9.0+PTX", [(9, 0)], True),
    ("8.0;9.0+PTX", [(8, 6)], True),    # sm_80 code runs on later 8.x GPUs
    ("8.0;9.0+PTX", [(10, 0)], True),   # PTX compiles for later GPUs
    ("8.0;9.0", [(10, 0)], False),
    ("9.0", [(8, 0)], False),
    ("8.0;9.0", [(9, 0), (7, 5)], False),  # every visible GPU must be served
])
def test_which_gpus_a_cuda_build_runs_on(monkeypatch, archs, caps, runs):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(caps))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: caps[i])
    assert _backend._cuda_runs(archs) is runs


def test_prebuild_targets_use_the_jit_flags():
    targets = _backend.prebuild_targets(["avx2", "generic"], "9.0")
    assert [t["name"] for t in targets] == ["lgi_gsplat2d_cpu_avx2", "lgi_gsplat2d_cpu_generic",
                                            "lgi_gsplat2d_native_avx2", "lgi_gsplat2d_native_generic",
                                            "lgi_gsplat2d_cuda"]
    assert targets[0]["cflags"] == _backend._cpu_cflags("avx2") and "-mavx2" in targets[0]["cflags"]
    assert not any(f.startswith("-mavx") for f in targets[1]["cflags"])
    assert all(Path(s).is_file() for t in targets for s in t.get("sources", []))
    assert targets[4]["cuda_cflags"] == _backend._cuda_cflags()
    # The torch-free renderer: the same kernel flags, compiled as a plain shared library.
    native_avx2 = targets[2]["command"]
    assert "-shared" in native_avx2 and native_avx2[-2:] == ["-o", "{output}"]
    assert all(f in native_avx2 for f in _backend._cpu_cflags("avx2"))
    assert not any(f.startswith("-mavx") for f in targets[3]["command"])
