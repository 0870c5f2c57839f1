"""Lazy loading of the native kernels.

Importing the package never compiles. The first call that needs a native backend JIT-builds it with the
public ``torch.utils.cpp_extension.load`` (ninja) into an explicit build directory

    $LGI_EXTENSIONS_DIR (default ~/.cache/lgi/extensions) / <ext-name>-<hash>

where the hash covers the sources and where they lie, the compiler flags, the torch version and
installation and, for CUDA, the CUDA version and target architectures (one cache per torch installation:
environments never rebuild each other's). A build says so on stderr. Later processes load the cached library in milliseconds. A failed build is
remembered for the process (and noted in the build directory for :func:`kernel_status`) and raised as
:class:`BackendUnavailable` with its cause: no compiler, no ninja, no CUDA toolkit, or the compiler's text.

A platform wheel (``python tools/wheelhouse.py --prebuilt``) carries the kernels already compiled, in
``_prebuilt/`` beside this file: the CPU kernels three times (AVX-512, AVX2 and portable x86-64; the best
one this CPU runs is chosen at load time) and the CUDA kernels where the build machine had a toolkit. They
are used when ``_prebuilt/manifest.json`` names this very torch, Python and sources; JIT is the fallback.
``LGI_KERNEL_ISA=avx512|avx2|generic`` picks the CPU variant (prebuilt or JIT; refused where the CPU lacks
it); ``LGI_PREBUILT=0`` ignores the prebuilt kernels.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import native
from .native import _AVX512, ISAS, BackendUnavailable, _cpu_flags, cpu_cflags, extensions_dir  # noqa: F401

__all__ = ["BackendUnavailable", "kernel_status", "load", "resolve", "extensions_dir"]

_log = logging.getLogger("lgi_gsplat2d")
_CSRC = Path(__file__).resolve().parent / "csrc"
_HEADERS = ("common.h", "project.h", "rasterize.h")
_SOURCES = {
    "cpu": ("cpu_common.h", "ext.cpp", "project_cpu.cpp", "rasterize_cpu.cpp", "rasterize_no_tiles_cpu.cpp"),
    "cuda": ("ext.cpp", "project_cuda.cu", "rasterize_cuda.cu"),
}
_FAILED_NOTE = "BUILD_FAILED.txt"
_PREBUILT = Path(__file__).resolve().parent / "_prebuilt"
_MANIFEST = "manifest.json"
_DEFAULT_CUDA_ARCH = "9.0"  # what a build targets where no GPU tells us (H100/H200)

_lock = threading.Lock()
_loaded: dict[str, object] = {}
_failed: dict[str, str] = {}
_warned: set[str] = set()
_origin: dict[str, str] = {}  # how each loaded backend came: "prebuilt, <variant>, torch <v>" or "built"


def cpu_isa() -> str:
    """The CPU variant of the kernels this process uses (:func:`lgi_gsplat2d.native.cpu_isa`).

    Raises:
        BackendUnavailable: ``LGI_KERNEL_ISA`` names an unknown variant or one this CPU cannot run.
    """
    return native.cpu_isa(_cpu_flags())


def _cpu_cflags(isa: str | None = None) -> list[str]:
    return cpu_cflags(isa or cpu_isa())


def _cuda_arch() -> str:
    env = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if env:
        return env
    if torch.cuda.is_available():
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        return ";".join(f"{major}.{minor}" for major, minor in caps)
    return _DEFAULT_CUDA_ARCH


def _cuda_cflags() -> list[str]:
    # No --use_fast_math: q must round as on the CPU (the kernels use __expf where speed matters).
    return ["-O3", "-DLGI_WITH_CUDA", "-lineinfo"]


def sources_digest(kind: str) -> str:
    """A digest of the sources of ``kind``'s kernels (what a prebuilt manifest records)."""
    if kind == "native":
        return native.sources_digest()
    h = hashlib.sha256()
    for name in (*_HEADERS, *_SOURCES[kind]):
        h.update(name.encode())
        h.update((_CSRC / name).read_bytes())
    return h.hexdigest()[:16]


def _source_hash(kind: str) -> str:
    h = hashlib.sha256()
    h.update(sources_digest(kind).encode())
    h.update(torch.__version__.encode())
    h.update(sys.version.split()[0].encode())
    # One cache per torch installation and source tree: two environments with the same torch version
    # compile with different include paths, and sharing a folder made ninja rebuild it in turn.
    h.update(str(Path(torch.__file__).resolve().parent).encode())
    h.update(str(_CSRC).encode())
    if kind == "cpu":
        h.update(" ".join(_cpu_cflags()).encode())
    else:
        h.update(" ".join(_cuda_cflags()).encode())
        h.update(str(torch.version.cuda).encode())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class _Spec:
    kind: str
    name: str
    build_dir: Path


def _arch_tag(arch: str) -> str:
    return "sm" + "-".join(a.replace(".", "").replace("+PTX", "ptx") for a in arch.split(";") if a)


def _spec(kind: str, arch: str | None = None) -> _Spec:
    name = f"lgi_gsplat2d_{kind}"
    tag = f"{name}-{_source_hash(kind)}"
    if kind == "cuda":
        tag += "-" + _arch_tag(arch or _cuda_arch())
    return _Spec(kind, name, extensions_dir() / tag)


def _library(spec: _Spec) -> Path:
    return spec.build_dir / f"{spec.name}.so"


def _manifest() -> tuple[dict | None, str]:
    """The prebuilt kernels' manifest if it fits this process, else ``(None, why not)``."""
    path = _PREBUILT / _MANIFEST
    if os.environ.get("LGI_PREBUILT", "").strip() == "0":
        return None, "LGI_PREBUILT=0"
    if not path.is_file():
        return None, "no prebuilt kernels in this install"
    try:
        manifest = json.loads(path.read_text())
        built_for = (manifest["torch"], manifest["python"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"unreadable {path}: {exc}"
    here = (torch.__version__, f"{sys.version_info.major}.{sys.version_info.minor}")
    if built_for != here:
        return None, f"prebuilt for torch {built_for[0]} / Python {built_for[1]}, this is {here[0]} / {here[1]}"
    return manifest, ""


def _cuda_runs(archs: str) -> bool:
    """Whether code built for ``archs`` (e.g. "8.0;9.0+PTX") runs on every visible GPU."""
    if not torch.cuda.is_available():
        return True  # nothing to check; loading needs no GPU
    built = [(tuple(int(x) for x in a.replace("+PTX", "").split(".")), a.endswith("+PTX"))
             for a in archs.split(";") if a]
    for i in range(torch.cuda.device_count()):
        cap = torch.cuda.get_device_capability(i)
        if not any((arch[0] == cap[0] and arch[1] <= cap[1]) or (ptx and arch <= cap) for arch, ptx in built):
            return False
    return True


def _prebuilt(kind: str) -> tuple[Path | None, str, str]:
    """``(library, module name, description)`` of the prebuilt ``kind`` kernels, or ``(None, "", why not)``.

    Raises:
        BackendUnavailable: ``LGI_KERNEL_ISA`` is invalid for this CPU.
    """
    manifest, why = _manifest()
    if manifest is None:
        return None, "", why
    entry = manifest.get(kind)
    if not entry:
        return None, "", f"the prebuilt kernels have no {kind.upper()} build"
    if manifest.get("sources", {}).get(kind) != sources_digest(kind):
        return None, "", "the prebuilt kernels were built from other sources"
    if kind == "cpu":
        isa = cpu_isa()
        if isa not in entry:
            return None, "", f"the prebuilt kernels have no {isa} variant"
        file, label = entry[isa], f"prebuilt, {isa}"
    else:
        if not _cuda_runs(entry["archs"]):
            return None, "", f"prebuilt for CUDA archs {entry['archs']}, which this GPU cannot run"
        file, label = entry["file"], f"prebuilt, sm {entry['archs']}"
    library = _PREBUILT / file
    if not library.is_file():
        return None, "", f"{library} is missing"
    return library, file.split(".")[0], f"{label}, torch {manifest['torch']}"


def kernel_status() -> dict[str, str]:
    """How each native backend is or would be loaded: prebuilt, JIT-built (cached), or built on first use.

    Looks at the install and the build cache only (never compiles, never loads). Registered under the
    ``lgi.kernels`` entry point group for ``lgi versions``.
    """
    try:
        return _kernel_status()
    except BackendUnavailable as exc:  # an invalid LGI_KERNEL_ISA
        return {"cpu": f"unavailable: {exc}", "cuda": f"unavailable: {exc}"}


def _kernel_status() -> dict[str, str]:
    status: dict[str, str] = {}
    cpu = _spec("cpu")
    prebuilt_cpu = _prebuilt("cpu")
    if "cpu" in _loaded:
        status["cpu"] = _origin["cpu"]
    elif prebuilt_cpu[0] is not None:
        status["cpu"] = prebuilt_cpu[2]
    elif (cpu.build_dir / _FAILED_NOTE).is_file():
        status["cpu"] = "build failed: " + (cpu.build_dir / _FAILED_NOTE).read_text().strip().splitlines()[0]
    elif _library(cpu).is_file():
        status["cpu"] = "built"
    else:
        status["cpu"] = "not built (builds on first use)"
    gpu = torch.cuda.is_available()
    prefix = f"lgi_gsplat2d_cuda-{_source_hash('cuda')}-"
    dirs = sorted(extensions_dir().glob(prefix + "*"))
    built = [p.name[len(prefix):] for p in dirs
             if (p / "lgi_gsplat2d_cuda.so").is_file() and not (p / _FAILED_NOTE).is_file()]
    failed = [p / _FAILED_NOTE for p in dirs if (p / _FAILED_NOTE).is_file()]
    prebuilt_cuda = _prebuilt("cuda")
    if "cuda" in _loaded:
        status["cuda"] = _origin["cuda"]
    elif prebuilt_cuda[0] is not None:
        status["cuda"] = prebuilt_cuda[2] + ("" if gpu else ", no GPU to run it")
    elif built:
        status["cuda"] = f"built ({', '.join(built)})" + ("" if gpu else ", no GPU to run it")
    elif failed:
        status["cuda"] = "build failed: " + failed[0].read_text().strip().splitlines()[0]
    elif torch.version.cuda is None:
        status["cuda"] = "not built (this torch has no CUDA support)"
    elif not gpu:
        status["cuda"] = "not built (no GPU)"
    else:
        status["cuda"] = "not built (builds on first use)"
    status["native"] = native.status()  # the torch-free renderer of the decoder
    return status


def _find_cuda_home() -> str | None:
    """The CUDA toolkit root (holding bin/nvcc and lib64/libcudart.so).

    torch guesses it from the nvcc on PATH, which is wrong when that nvcc is a wrapper script (as on our
    machines); nvcc itself reports the real root on its ``#$ TOP=`` dry-run line.
    """

    def ok(root: Path) -> bool:
        return (root / "bin" / "nvcc").is_file() and any(
            (root / lib / "libcudart.so").exists() for lib in ("lib64", "lib", "targets/x86_64-linux/lib"))

    candidates: list[Path] = []
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]))
    nvcc = shutil.which("nvcc")
    if nvcc:
        try:
            res = subprocess.run([nvcc, "--dryrun", "-v", "x.cu"], capture_output=True, text=True, timeout=60)
            match = re.search(r"^#\$ TOP=(.+)$", res.stdout + res.stderr, flags=re.MULTILINE)
            if match:
                candidates.append(Path(match.group(1).strip()).resolve())
        except (OSError, subprocess.SubprocessError):
            pass
        candidates.append(Path(nvcc).resolve().parent.parent)
    candidates.append(Path("/usr/local/cuda"))
    for root in candidates:
        if ok(root):
            return str(root.resolve())
    return None


def _explain(kind: str, exc: BaseException) -> str:
    text = str(exc).strip()
    tail = "\n".join(text.splitlines()[-25:])
    return f"building the {kind.upper()} kernels of lgi-gsplat2d failed: {tail}"


def _preflight(kind: str) -> None:
    """Fail early, with a clear message, on what torch would report obscurely."""
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise BackendUnavailable(f"no C++ compiler: '{cxx}' is not on PATH (install g++ or set CXX)")
    if shutil.which("ninja") is None and not (Path(sys.executable).parent / "ninja").exists():
        raise BackendUnavailable("ninja is not installed (pip install ninja)")
    if kind == "cuda":
        if torch.version.cuda is None:
            raise BackendUnavailable("this torch build has no CUDA support")
        if _find_cuda_home() is None:
            raise BackendUnavailable("no CUDA toolkit found: nvcc is not on PATH and CUDA_HOME is not set")


def _announce_build(what: str, build_dir: Path) -> None:
    """Say on stderr that a build starts (or waits for another process's), so a first call is not silent."""
    if (build_dir / "lock").exists():  # torch's cpp_extension holds this file while it builds
        print(f"lgi: waiting for another process building {what} in {build_dir}", file=sys.stderr, flush=True)
    else:
        print(f"lgi: building {what} (once per torch installation, about a minute) in {build_dir}",
              file=sys.stderr, flush=True)


def _build(kind: str):
    _preflight(kind)
    if shutil.which("ninja") is None:  # the venv's ninja when the venv is not on PATH
        os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    # Importing cpp_extension logs a warning on machines without a GPU; it is noise for a CPU build.
    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        quiet.setLevel(level)
    arch = _cuda_arch() if kind == "cuda" else None
    spec = _spec(kind, arch)
    spec.build_dir.mkdir(parents=True, exist_ok=True)
    sources = [str(_CSRC / s) for s in _SOURCES[kind] if not s.endswith(".h")]
    saved_env = dict(os.environ)
    try:
        kwargs = {"extra_cflags": _cpu_cflags(), "extra_ldflags": ["-fopenmp"]}
        if kind == "cuda":
            home = _find_cuda_home()
            os.environ["CUDA_HOME"] = home
            # torch reads CUDA_HOME once, at import; correct it when it guessed a wrapper's folder.
            cpp_extension.CUDA_HOME = home
            os.environ["TORCH_CUDA_ARCH_LIST"] = arch
            kwargs = {"extra_cflags": ["-O3", "-DLGI_WITH_CUDA"], "extra_cuda_cflags": _cuda_cflags()}
        if not _library(spec).is_file():
            _announce_build(f"the {kind.upper()} kernels of lgi-gsplat2d", spec.build_dir)
        module = cpp_extension.load(name=spec.name, sources=sources, build_directory=str(spec.build_dir),
                                    extra_include_paths=[str(_CSRC)], verbose=False, **kwargs)
    finally:
        for key in ("TORCH_CUDA_ARCH_LIST",):
            if key in saved_env:
                os.environ[key] = saved_env[key]
            else:
                os.environ.pop(key, None)
    (spec.build_dir / _FAILED_NOTE).unlink(missing_ok=True)
    return module


def _load_prebuilt(kind: str):
    """The prebuilt ``kind`` module, or None where there is none for this process (then JIT builds)."""
    library, name, label = _prebuilt(kind)
    if library is None:
        return None
    spec = importlib.util.spec_from_file_location(name, library)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:  # e.g. a missing libgomp: the JIT build may still work
        _log.warning("lgi-gsplat2d: the prebuilt %s kernels do not load (%s); building them instead", kind, exc)
        return None
    _origin[kind] = label
    return module


def prebuild_targets(isas: list[str], cuda_archs: str | None) -> list[dict]:
    """What a platform wheel compiles (``tools/hatch_prebuild.py``): one entry per library.

    ``isas``: the CPU variants (keys of :data:`ISAS`); ``cuda_archs``: a TORCH_CUDA_ARCH_LIST for the
    CUDA kernels, or None for none. The flags are the JIT build's, so the speed is the same.
    """
    targets = [{"kind": "cpu", "key": isa, "name": f"lgi_gsplat2d_cpu_{isa}",
                "sources": [str(_CSRC / f) for f in _SOURCES["cpu"] if not f.endswith(".h")],
                "include_dirs": [str(_CSRC)], "cflags": _cpu_cflags(isa), "cuda_cflags": [],
                "ldflags": ["-fopenmp"]} for isa in isas]
    # The torch-free renderer of the decoder (native.py): a plain shared library, compiled directly.
    targets += [{"kind": "native", "key": isa, "name": f"{native.NAME}_{isa}",
                 "command": native.compile_command(Path("{output}"), isa)} for isa in isas]
    if cuda_archs:
        targets.append({"kind": "cuda", "key": cuda_archs, "name": "lgi_gsplat2d_cuda",
                        "sources": [str(_CSRC / f) for f in _SOURCES["cuda"]], "include_dirs": [str(_CSRC)],
                        "cflags": ["-O3", "-DLGI_WITH_CUDA"], "cuda_cflags": _cuda_cflags(), "ldflags": []})
    return targets


def load(kind: str):
    """The native module for ``kind`` ("cpu" or "cuda"), building it on first use.

    Raises:
        BackendUnavailable: the build failed now or earlier in this process.
    """
    with _lock:
        if kind in _loaded:
            return _loaded[kind]
        if kind in _failed:
            raise BackendUnavailable(_failed[kind])
        try:
            module = _load_prebuilt(kind) or _build(kind)
        except BackendUnavailable as exc:
            _failed[kind] = str(exc)
            raise
        except Exception as exc:  # noqa: BLE001 - any build error becomes one explained failure
            _failed[kind] = _explain(kind, exc)
            try:
                spec = _spec(kind)
                spec.build_dir.mkdir(parents=True, exist_ok=True)
                (spec.build_dir / _FAILED_NOTE).write_text(_failed[kind] + "\n")
            except OSError:
                pass
            raise BackendUnavailable(_failed[kind]) from exc
        _loaded[kind] = module
        _origin.setdefault(kind, "built")
        return module


def resolve(backend: str, device: torch.device, dtype: torch.dtype):
    """Pick the implementation for a call: returns ``("torch", None)`` or ``(kind, native_module)``.

    ``auto``: CUDA tensors -> CUDA kernels (float32; float64 goes to the reference), CPU tensors -> C++
    kernels, anything else -> the reference; a native build failure warns once and uses the reference.
    """
    if backend == "torch":
        return "torch", None
    if backend == "cpu":
        if device.type != "cpu":
            raise ValueError(f"backend='cpu' needs CPU tensors, got tensors on {device}")
        return "cpu", load("cpu")
    if backend == "cuda":
        if device.type != "cuda":
            raise ValueError(f"backend='cuda' needs CUDA tensors, got tensors on {device}")
        if dtype != torch.float32:
            raise ValueError(f"the CUDA kernels take float32 tensors, got {dtype} (use backend='torch')")
        return "cuda", load("cuda")
    if backend != "auto":
        raise ValueError(f"backend must be 'auto', 'cpu', 'cuda' or 'torch', got {backend!r}")
    kind = {"cpu": "cpu", "cuda": "cuda"}.get(device.type)
    if kind is None or (kind == "cuda" and dtype != torch.float32):
        return "torch", None
    try:
        return kind, load(kind)
    except BackendUnavailable as exc:
        if kind not in _warned:
            _warned.add(kind)
            warnings.warn(f"lgi-gsplat2d: using the slow PyTorch reference: {exc}", RuntimeWarning, stacklevel=3)
        return "torch", None


def load_kernels(backend: str = "auto", device: str = "cpu") -> str:
    """Load now (building them on first use) the kernels a float32 render with ``backend`` on ``device``
    would use, and return their kind: ``"cpu"``, ``"cuda"`` or ``"torch"`` (the reference). A caller that
    times its work calls this first, so that loading is not counted as the work.

    Raises:
        ValueError: a backend that cannot draw on that device. BackendUnavailable: an explicit native
            backend that does not load.
    """
    kind, _ = resolve(backend, torch.device(device), torch.float32)
    return kind
