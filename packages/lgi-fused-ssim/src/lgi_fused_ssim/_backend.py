"""Lazy loading of the native kernels.

Importing this module compiles nothing and imports nothing heavy. The first call that needs a kernel
JIT-builds it with the public ``torch.utils.cpp_extension.load`` (ninja) into an explicit build
directory, ``$LGI_EXTENSIONS_DIR`` (default ``~/.cache/lgi/extensions``) ``/<name>-<hash>``, where the
hash covers the sources and where they lie, the flags, the torch version and installation (one cache
per torch installation: environments never rebuild each other's) and, for CUDA, the CUDA version and
target architectures; a build says so on stderr. That naming is what lets :func:`kernel_status` report what is built by looking at the
cache alone. A failed build is remembered for the life of the process and re-raised with its cause.

A platform wheel (``python tools/wheelhouse.py --prebuilt``) carries the kernels already compiled, in
``_prebuilt/`` beside this file (the CPU kernel, portable x86-64 with the JIT build's flags, and the CUDA
kernel where the build machine had a toolkit). They are used when ``_prebuilt/manifest.json`` names this
very torch, Python and sources; otherwise the JIT build runs. ``LGI_PREBUILT=0`` ignores them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType

_CSRC = Path(__file__).resolve().with_name("csrc")

# One extension per backend, so that the CPU build never needs nvcc.
_SPECS: dict[str, dict] = {
    "cpu": {
        "name": "lgi_fused_ssim_cpu",
        "sources": ("ext.cpp", "ssim_cpu.cpp"),
        "cflags": ("-O3", "-fopenmp"),
        "cuda_cflags": (),
        "ldflags": ("-fopenmp",),
    },
    "cuda": {
        "name": "lgi_fused_ssim_cuda",
        "sources": ("ext.cpp", "ssim_cuda.cu"),
        "cflags": ("-O3", "-DLGI_FUSED_SSIM_CUDA"),
        "cuda_cflags": ("-O3", "-DLGI_FUSED_SSIM_CUDA"),
        "ldflags": (),
    },
}
_HEADERS = ("common.h", "ssim.h")
_PREBUILT = Path(__file__).resolve().with_name("_prebuilt")
_MANIFEST = "manifest.json"

_LOCK = threading.RLock()
_MODULES: dict[str, ModuleType] = {}
_FAILURES: dict[str, str] = {}
_WARNED: set[str] = set()
_ORIGIN: dict[str, str] = {}  # how each loaded kernel came: "prebuilt, <variant>, torch <v>" or "built"


class KernelUnavailableError(RuntimeError):
    """A native kernel could not be built or loaded; the message names the cause."""


def extensions_root() -> Path:
    """The build cache root: ``$LGI_EXTENSIONS_DIR`` or ``~/.cache/lgi/extensions``."""
    env = os.environ.get("LGI_EXTENSIONS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lgi" / "extensions"


def _cuda_arch_key() -> str:
    """The CUDA targets a build would use: TORCH_CUDA_ARCH_LIST, else the visible GPUs (no compiling)."""
    env = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if env:
        return env.strip()
    import torch

    if not torch.cuda.is_available():
        return "no-gpu"
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    return ";".join(f"{major}.{minor}" for major, minor in caps)


def sources_digest(kind: str) -> str:
    """A digest of the sources of the ``kind`` kernel (what a prebuilt manifest records)."""
    h = hashlib.sha256()
    for fname in sorted({*_SPECS[kind]["sources"], *_HEADERS}):
        h.update(fname.encode())
        h.update((_CSRC / fname).read_bytes())
    return h.hexdigest()[:16]


def build_directory(kind: str) -> Path:
    """``<extensions root>/<ext name>-<short hash>`` for ``kind`` in {"cpu", "cuda"}."""
    import torch

    spec = _SPECS[kind]
    h = hashlib.sha256()
    h.update(sources_digest(kind).encode())
    h.update(repr((spec["cflags"], spec["cuda_cflags"], spec["ldflags"])).encode())
    h.update(f"torch={torch.__version__}".encode())
    # One cache per torch installation and source tree: two environments with the same torch version
    # compile with different include paths, and sharing a folder made ninja rebuild it in turn.
    h.update(f"at={Path(torch.__file__).resolve().parent};src={_CSRC}".encode())
    if kind == "cuda":
        h.update(f"cuda={torch.version.cuda};arch={_cuda_arch_key()}".encode())
    else:
        h.update(b"cuda=off")
    return extensions_root() / f"{spec['name']}-{h.hexdigest()[:12]}"


def _built_library(kind: str) -> Path | None:
    name = _SPECS[kind]["name"]
    directory = build_directory(kind)
    if not directory.is_dir():
        return None
    found = sorted(directory.glob(f"{name}*.so")) + sorted(directory.glob(f"{name}*.pyd"))
    return found[0] if found else None


def _prebuilt(kind: str) -> tuple[Path | None, str, str]:
    """``(library, module name, description)`` of the prebuilt ``kind`` kernel, or ``(None, "", why not)``."""
    import torch

    path = _PREBUILT / _MANIFEST
    if os.environ.get("LGI_PREBUILT", "").strip() == "0":
        return None, "", "LGI_PREBUILT=0"
    if not path.is_file():
        return None, "", "no prebuilt kernels in this install"
    try:
        manifest = json.loads(path.read_text())
        built_for = (manifest["torch"], manifest["python"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, "", f"unreadable {path}: {exc}"
    here = (torch.__version__, f"{sys.version_info.major}.{sys.version_info.minor}")
    if built_for != here:
        return None, "", f"prebuilt for torch {built_for[0]} / Python {built_for[1]}, this is {here[0]} / {here[1]}"
    entry = manifest.get(kind)
    if not entry or manifest.get("sources", {}).get(kind) != sources_digest(kind):
        return None, "", f"no prebuilt {kind.upper()} kernel for these sources"
    file = entry["generic"] if kind == "cpu" else entry["file"]
    if kind == "cuda" and torch.cuda.is_available():
        # SASS runs on its major version's later minors; PTX is compiled for any later GPU.
        built = [(tuple(int(x) for x in a.replace("+PTX", "").split(".")), a.endswith("+PTX"))
                 for a in entry["archs"].split(";") if a]
        caps = [torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())]
        if not all(any((a[0] == c[0] and a[1] <= c[1]) or (ptx and a <= c) for a, ptx in built) for c in caps):
            return None, "", f"prebuilt for CUDA archs {entry['archs']}, which this GPU cannot run"
    library = _PREBUILT / file
    if not library.is_file():
        return None, "", f"{library} is missing"
    label = "prebuilt, portable x86-64" if kind == "cpu" else f"prebuilt, sm {entry['archs']}"
    return library, file.split(".")[0], f"{label}, torch {manifest['torch']}"


def _load_prebuilt(kind: str) -> ModuleType | None:
    library, name, label = _prebuilt(kind)
    if library is None:
        return None
    spec = importlib.util.spec_from_file_location(name, library)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:  # e.g. a missing libgomp: the JIT build may still work
        logging.getLogger("lgi_fused_ssim").warning(
            "lgi-fused-ssim: the prebuilt %s kernel does not load (%s); building it instead", kind, exc)
        return None
    _ORIGIN[kind] = label
    return module


def prebuild_targets(isas: list[str], cuda_archs: str | None) -> list[dict]:
    """What a platform wheel compiles (``tools/hatch_prebuild.py``): one entry per library.

    The CPU kernel has one variant, "generic" (the JIT build's flags, no vector ISA flags), whatever
    ``isas`` asks for; ``cuda_archs``: a TORCH_CUDA_ARCH_LIST for the CUDA kernel, or None for none.
    """
    del isas
    targets = []
    for kind in ("cpu", "cuda") if cuda_archs else ("cpu",):
        spec = _SPECS[kind]
        targets.append({"kind": kind, "key": "generic" if kind == "cpu" else cuda_archs,
                        "name": spec["name"] + ("_generic" if kind == "cpu" else ""),
                        "sources": [str(_CSRC / f) for f in spec["sources"]], "include_dirs": [str(_CSRC)],
                        "cflags": list(spec["cflags"]), "cuda_cflags": list(spec["cuda_cflags"]),
                        "ldflags": list(spec["ldflags"])})
    return targets


def kernel_status() -> dict[str, str]:
    """How each kernel is or would be loaded: prebuilt, built (JIT cache), or not built; never compiles.

    Registered under ``lgi.kernels``.

    Returns:
        ``{"cpu": ..., "cuda": ...}`` with values such as ``"prebuilt, portable x86-64, torch ..."``,
        ``"built"``, ``"not built"``, ``"not built (no GPU)"`` or ``"build failed in this process: ..."``.
    """
    import torch

    status: dict[str, str] = {}
    for kind in ("cpu", "cuda"):
        prebuilt = _prebuilt(kind)
        if kind in _FAILURES:
            status[kind] = f"build failed in this process: {_FAILURES[kind].splitlines()[0]}"
        elif kind in _MODULES:
            status[kind] = _ORIGIN.get(kind, "built")
        elif prebuilt[0] is not None:
            status[kind] = prebuilt[2] + ("" if kind == "cpu" or torch.cuda.is_available() else ", no GPU to run it")
        elif _built_library(kind) is not None:
            status[kind] = "built"
        elif kind == "cuda" and torch.version.cuda is None:
            status[kind] = "not built (torch has no CUDA support)"
        elif kind == "cuda" and not torch.cuda.is_available():
            status[kind] = "not built (no GPU)"
        else:
            status[kind] = "not built"
    return status


def _check_cuda_toolkit(cpp_extension: ModuleType) -> None:
    home = cpp_extension.CUDA_HOME
    hint = ("set CUDA_HOME to the toolkit root that holds bin/nvcc and lib64/libcudart.so "
            "(`nvcc --dryrun -v x.cu` prints it as TOP=...) before starting Python")
    if not home:
        raise KernelUnavailableError(f"no CUDA toolkit found: {hint}")
    root = Path(home)
    libs = [*root.glob("lib64/libcudart.so*"), *root.glob("lib/libcudart.so*"),
            *root.glob("targets/*/lib/libcudart.so*")]
    if not (root / "bin" / "nvcc").exists() or not libs:
        raise KernelUnavailableError(f"CUDA_HOME={home} is not a CUDA toolkit root: {hint}")


def _compile(kind: str) -> ModuleType:
    # cpp_extension logs "No CUDA runtime is found" at import on GPU-less machines; that is noise
    # for the CPU build and for a compile-only CUDA build, so keep it out of the user's stderr.
    ext_logger = logging.getLogger("torch.utils.cpp_extension")
    level = ext_logger.level
    ext_logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        ext_logger.setLevel(level)

    spec = _SPECS[kind]
    if kind == "cuda":
        _check_cuda_toolkit(cpp_extension)
    directory = build_directory(kind)
    directory.mkdir(parents=True, exist_ok=True)
    if _built_library(kind) is None:  # a build, not a load from the cache: say so
        what = f"the {kind.upper()} kernel of lgi-fused-ssim"
        if (directory / "lock").exists():  # torch's cpp_extension holds this file while it builds
            print(f"lgi: waiting for another process building {what} in {directory}", file=sys.stderr, flush=True)
        else:
            print(f"lgi: building {what} (once per torch installation, about a minute) in {directory}",
                  file=sys.stderr, flush=True)
    # Fresh lists: load() appends to the flag lists it is given.
    return cpp_extension.load(
        name=spec["name"],
        sources=[str(_CSRC / s) for s in spec["sources"]],
        extra_cflags=list(spec["cflags"]),
        extra_cuda_cflags=list(spec["cuda_cflags"]) or None,
        extra_ldflags=list(spec["ldflags"]),
        extra_include_paths=[str(_CSRC)],
        build_directory=str(directory),
        with_cuda=kind == "cuda",
        verbose=False,
    )


def build(kind: str) -> ModuleType:
    """Build (or load from the cache) the ``kind`` extension and return it; failures are cached.

    Raises:
        KernelUnavailableError: the build or the import failed (now or earlier in this process).
    """
    if kind not in _SPECS:
        raise ValueError(f"unknown kernel kind {kind!r}; expected one of {sorted(_SPECS)}")
    with _LOCK:
        if kind in _MODULES:
            return _MODULES[kind]
        if kind in _FAILURES:
            raise KernelUnavailableError(_FAILURES[kind])
        try:
            module = _load_prebuilt(kind) or _compile(kind)
        except Exception as exc:  # noqa: BLE001 - any build error becomes one explained failure
            detail = str(exc).strip()
            if len(detail) > 3000:
                detail = "...\n" + detail[-3000:]
            message = (f"the lgi_fused_ssim {kind} kernel could not be built or loaded "
                       f"({type(exc).__name__}): {detail}")
            _FAILURES[kind] = message
            raise KernelUnavailableError(message) from exc
        _MODULES[kind] = module
        _ORIGIN.setdefault(kind, "built")
        return module


def auto_ops(kind: str) -> ModuleType | None:
    """The ``kind`` kernel for ``backend="auto"``, or None (use the reference) after one warning."""
    try:
        return build(kind)
    except KernelUnavailableError as exc:
        with _LOCK:
            first = kind not in _WARNED
            _WARNED.add(kind)
        if first:
            warnings.warn(f"{exc}. Falling back to the PyTorch reference (slower) for the rest of this "
                          "process; pass backend='torch' to choose it explicitly.", RuntimeWarning,
                          stacklevel=4)
        return None
