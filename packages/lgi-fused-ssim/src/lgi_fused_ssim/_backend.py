"""Lazy loading of the native kernels.

Importing this module compiles nothing and imports nothing heavy. The first call that needs a kernel
JIT-builds it with the public ``torch.utils.cpp_extension.load`` (ninja) into an explicit build
directory, ``$LGI_EXTENSIONS_DIR`` (default ``~/.cache/lgi/extensions``) ``/<name>-<hash>``, where the
hash covers the sources and where they lie, the flags, the torch version and installation (one cache
per torch installation: environments never rebuild each other's) and, for CUDA, the CUDA version and
target architectures; a build says so on stderr. That naming is what lets :func:`kernel_status` report what is built by looking at the
cache alone. A failed build is remembered for the life of the process and re-raised with its cause.
"""

from __future__ import annotations

import hashlib
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
_HEADERS = ("ssim.h",)

_LOCK = threading.RLock()
_MODULES: dict[str, ModuleType] = {}
_FAILURES: dict[str, str] = {}
_WARNED: set[str] = set()


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


def build_directory(kind: str) -> Path:
    """``<extensions root>/<ext name>-<short hash>`` for ``kind`` in {"cpu", "cuda"}."""
    import torch

    spec = _SPECS[kind]
    h = hashlib.sha256()
    for fname in sorted({*spec["sources"], *_HEADERS}):
        h.update(fname.encode())
        h.update((_CSRC / fname).read_bytes())
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


def kernel_status() -> dict[str, str]:
    """What is built, from the build cache alone; never compiles. Registered under ``lgi.kernels``.

    Returns:
        ``{"cpu": ..., "cuda": ...}`` with values such as ``"built"``, ``"not built"``,
        ``"not built (no GPU)"`` or ``"build failed in this process: ..."``.
    """
    import torch

    status: dict[str, str] = {}
    for kind in ("cpu", "cuda"):
        if kind in _FAILURES:
            status[kind] = f"build failed in this process: {_FAILURES[kind].splitlines()[0]}"
        elif kind in _MODULES or _built_library(kind) is not None:
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
            module = _compile(kind)
        except Exception as exc:  # noqa: BLE001 - any build error becomes one explained failure
            detail = str(exc).strip()
            if len(detail) > 3000:
                detail = "...\n" + detail[-3000:]
            message = (f"the lgi_fused_ssim {kind} kernel could not be built or loaded "
                       f"({type(exc).__name__}): {detail}")
            _FAILURES[kind] = message
            raise KernelUnavailableError(message) from exc
        _MODULES[kind] = module
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
