"""Hatchling build hook: compiled kernels inside the lgi-gsplat2d and lgi-fused-ssim wheels.

Off by default (``enable-by-default = false`` in the two pyproject.toml files): source and editable
installs stay pure Python and JIT-build their kernels on first use. ``python tools/wheelhouse.py
--prebuilt`` turns it on (``HATCH_BUILD_HOOK_ENABLE_CUSTOM=true``) and must run under an interpreter
with torch and setuptools (``--no-build-isolation``). For each library the package's ``_backend``
lists (``prebuild_targets``: the CPU variants, and CUDA where a toolkit is found), the hook compiles
it ahead of time with torch's public ``BuildExtension`` in a child process (nothing is imported, so
an AVX-512 variant builds on a CPU that cannot run it), writes ``_prebuilt/manifest.json`` (torch,
Python, the sources' digest, one file per variant), and makes the wheel a platform wheel that requires
exactly the torch it was built against.

Environment: ``LGI_PREBUILD_ISAS`` (default ``avx512,avx2,generic``), ``LGI_PREBUILD_CUDA`` (``0``:
no CUDA build; ``1``: fail where no toolkit is found; default: build where one is found) and
``LGI_PREBUILD_CUDA_ARCHS`` (default ``8.0;9.0+PTX``: A100, H100/H200, PTX for later GPUs).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

try:  # the hook needs hatchling; the compile step run as a script does not
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # pragma: no cover - only in the child process
    BuildHookInterface = object

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ISAS = "avx512,avx2,generic"
DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"
_UNDO_PYTHON_CFLAGS = ["-g0", "-fno-wrapv", "-UNDEBUG"]


def find_cuda_home() -> str | None:
    """The CUDA toolkit root, found as lgi-gsplat2d finds it at run time (the nvcc on PATH may be a wrapper)."""
    gsplat = (ROOT / "packages" / "lgi-gsplat2d" / "src" / "lgi_gsplat2d" / "_backend.py").resolve()
    return _load_backend(gsplat)._find_cuda_home()


def compile_target(target: dict, out_dir: Path, work_dir: Path, env: dict[str, str]) -> Path:
    """Compile one library (a ``prebuild_targets`` entry) into ``out_dir``; returns its path.

    setuptools puts Python's own CFLAGS first (here ``-DNDEBUG -g -fwrapv -O3 -Wall``); the flags
    appended after the target's undo what the JIT build does not have, so both compile the same code.
    """
    if "command" in target:  # a plain shared library (no torch, no Python module): the compiler directly
        library = out_dir / f"{target['name']}.so"
        command = [str(library) if part == "{output}" else part for part in target["command"]]
        res = subprocess.run(command, env=env, capture_output=True, text=True, cwd=work_dir)
        if res.returncode != 0 or not library.is_file():
            tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-30:])
            raise RuntimeError(f"compiling {target['name']} failed (exit {res.returncode}):\n{tail}")
        return library
    target = dict(target, cflags=[*target["cflags"], *_UNDO_PYTHON_CFLAGS])
    code = ("import json, sys\n"
            "from setuptools import setup\n"
            "from torch.utils import cpp_extension as ce\n"
            "t = json.loads(sys.argv[1])\n"
            "cls = ce.CUDAExtension if t['kind'] == 'cuda' else ce.CppExtension\n"
            "args = {'cxx': t['cflags'], 'nvcc': t['cuda_cflags']} if t['kind'] == 'cuda' else t['cflags']\n"
            "ext = cls(t['name'], t['sources'], include_dirs=t['include_dirs'], extra_compile_args=args,\n"
            "          extra_link_args=t['ldflags'])\n"
            "setup(name=t['name'], ext_modules=[ext], cmdclass={'build_ext': ce.BuildExtension},\n"
            "      script_args=['-q', 'build_ext', '--build-lib', sys.argv[2], '--build-temp', sys.argv[3]])\n")
    before = set(out_dir.glob(f"{target['name']}*.so"))
    res = subprocess.run([sys.executable, "-c", code, json.dumps(target), str(out_dir), str(work_dir)],
                         env=env, capture_output=True, text=True, cwd=work_dir)
    made = sorted(set(out_dir.glob(f"{target['name']}*.so")) - before)
    if res.returncode != 0 or len(made) != 1:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"compiling {target['name']} failed (exit {res.returncode}):\n{tail}")
    return made[0]


@functools.cache
def _load_backend(path: Path):
    """A package's ``_backend.py``, imported once per build process as a module of its package (under
    another name, so the installed package, if any, is not touched; its relative imports work)."""
    package = f"_lgi_prebuild_{path.parent.name}"
    if package not in sys.modules:  # the package's folder without running its __init__
        module = types.ModuleType(package)
        module.__path__ = [str(path.parent)]
        sys.modules[package] = module  # dataclasses look their module up there
    return importlib.import_module(f"{package}.{path.stem}")


class PrebuildHook(BuildHookInterface):
    """Compiles the package's kernels into the wheel (see the module docstring)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        try:
            import torch
        except ImportError as exc:
            raise RuntimeError("prebuilt kernels need torch in the build environment: build with "
                               "--no-build-isolation under the interpreter that has it") from exc
        root = Path(self.root)
        backend_file = (root / self.config["backend"]).resolve()
        package = backend_file.parent.name
        backend = _load_backend(backend_file)
        isas = [i for i in os.environ.get("LGI_PREBUILD_ISAS", DEFAULT_ISAS).split(",") if i]
        want_cuda = os.environ.get("LGI_PREBUILD_CUDA", "")
        cuda_home = None if want_cuda == "0" or torch.version.cuda is None else find_cuda_home()
        if want_cuda == "1" and cuda_home is None:
            raise RuntimeError("LGI_PREBUILD_CUDA=1 but no CUDA toolkit (or no CUDA torch) was found")
        archs = os.environ.get("LGI_PREBUILD_CUDA_ARCHS", DEFAULT_CUDA_ARCHS) if cuda_home else None

        self._work = Path(tempfile.mkdtemp(prefix=f"lgi-prebuild-{package}-"))
        out_dir = self._work / "_prebuilt"
        out_dir.mkdir()
        env = dict(os.environ)
        bindir = str(Path(sys.executable).parent)  # the venv's ninja when the venv is not on PATH
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        manifest: dict = {"torch": torch.__version__, "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
                          "sources": {}, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        for target in backend.prebuild_targets(isas, archs):
            kind = target["kind"]
            child_env = dict(env)
            if kind == "cuda":
                child_env.update(CUDA_HOME=cuda_home, TORCH_CUDA_ARCH_LIST=archs)
            started = time.perf_counter()
            print(f"lgi prebuild: compiling {target['name']} ...", file=sys.stderr, flush=True)
            work = self._work / target["name"]
            work.mkdir()
            library = compile_target(target, out_dir, work, child_env)
            print(f"lgi prebuild: {library.name} in {time.perf_counter() - started:.0f} s", file=sys.stderr,
                  flush=True)
            manifest["sources"][kind] = backend.sources_digest(kind)
            if kind in ("cpu", "native"):
                manifest.setdefault(kind, {})[target["key"]] = library.name
            else:
                manifest["cuda"] = {"file": library.name, "archs": archs, "cuda": torch.version.cuda}
            build_data["force_include"][str(library)] = f"{package}/_prebuilt/{library.name}"
        (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        build_data["force_include"][str(out_dir / "manifest.json")] = f"{package}/_prebuilt/manifest.json"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        # The libraries link against this torch's C++ API: the wheel requires exactly it.
        build_data["dependencies"].append(f"torch=={torch.__version__.split('+')[0]}")

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
