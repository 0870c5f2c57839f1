"""Rendering without torch: the CPU kernels through a plain C library (ctypes, numpy arrays).

Decoding a ``.lgi`` file needs only the forward render, and importing torch costs seconds of every
process start. This module imports neither torch nor the rest of the package: it loads
``lgi_gsplat2d_native``, a shared library of the same kernels as the torch extension
(``csrc/native.cpp`` over ``project_cpu.cpp`` and ``rasterize_cpu.cpp``, the same compiler flags), so
an image it draws equals ``lgi_gsplat2d.render``'s on the CPU bit for bit.

Where the library comes from, first match wins:

* a platform wheel's ``_prebuilt/`` folder (one file per CPU variant, listed in its manifest under
  ``native``; ``LGI_PREBUILT=0`` ignores it);
* the build cache, ``$LGI_EXTENSIONS_DIR`` (default ``~/.cache/lgi/extensions``) /
  ``lgi_gsplat2d_native-<hash>``: built there on first use with the C++ compiler (``$CXX``, default
  ``c++``; about half a minute, said on stderr), once per machine and source tree (the library does not
  depend on torch, so every environment shares it).

The CPU variant is the torch extension's (``LGI_KERNEL_ISA=avx512|avx2|generic`` forces one).
:func:`available` says whether the library can be had without raising.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

__all__ = ["ABI", "BackendUnavailable", "RenderLimitError", "available", "library_origin", "render",
           "render_band", "status"]

ABI = 2  # csrc/native.cpp: lgi_native_abi()
MODES = {"topk-hard": 0, "sum": 1, "topk": 2}  # csrc/common.h: Mode, the .lgi render-mode ids
#: The rasterizer's tile side in pixels (csrc/common.h: kTile), the one Python home of it: lgi_gsplat2d.TILE.
TILE = 16
MAX_K = 32

_CSRC = Path(__file__).resolve().parent / "csrc"
_PREBUILT = Path(__file__).resolve().parent / "_prebuilt"
SOURCES = ("common.h", "project.h", "rasterize.h", "cpu_common.h", "native.cpp", "project_cpu.cpp",
           "rasterize_cpu.cpp")
NAME = "lgi_gsplat2d_native"


class BackendUnavailable(RuntimeError):
    """A native backend could not be built or loaded; the message says why."""


class RenderLimitError(ValueError):
    """A render request beyond the rasterizer's documented limits (see lgi_gsplat2d.functional)."""


def extensions_dir() -> Path:
    """Root of the build cache: ``$LGI_EXTENSIONS_DIR`` or ``~/.cache/lgi/extensions``."""
    root = os.environ.get("LGI_EXTENSIONS_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "lgi" / "extensions"


# --- CPU variants (shared with the torch extension's _backend) ---------------------------------------

# The CPU variants, best first: the CPU flags each needs and the compiler flags it is built with.
# The kernels work on 16-float rows: one AVX-512 register (about 2x faster than AVX2 on an AVX-512 CPU).
_AVX512 = ("avx512f", "avx512dq", "avx512vl", "avx512bw")
ISAS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "avx512": (_AVX512, tuple("-m" + f for f in _AVX512)),
    "avx2": (("avx2",), ("-mavx2",)),
    "generic": ((), ()),  # the x86-64 baseline (SSE2)
}


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    lines = re.findall(r"^flags\s*:\s*(.*)$", text, flags=re.MULTILINE)
    return frozenset(lines[0].split()) if lines else frozenset()


def cpu_isa(flags: frozenset[str] | None = None) -> str:
    """The CPU variant of the kernels this process uses: ``$LGI_KERNEL_ISA``, else the best this CPU runs.

    Raises:
        BackendUnavailable: ``LGI_KERNEL_ISA`` names an unknown variant or one this CPU cannot run.
    """
    have = _cpu_flags() if flags is None else flags
    forced = os.environ.get("LGI_KERNEL_ISA", "").strip().lower()
    if forced:
        if forced not in ISAS:
            raise BackendUnavailable(f"LGI_KERNEL_ISA={forced!r}: expected one of {', '.join(ISAS)}")
        missing = [f for f in ISAS[forced][0] if f not in have]
        if missing:
            raise BackendUnavailable(f"LGI_KERNEL_ISA={forced}: this CPU lacks {', '.join(missing)}")
        return forced
    return next(isa for isa, (needs, _) in ISAS.items() if all(f in have for f in needs))


def cpu_cflags(isa: str) -> list[str]:
    """The kernels' compiler flags for a CPU variant (the torch extension's and this library's).

    -ffp-contract=off: no fused multiply-adds, so q (common.h: q_form) rounds exactly like the reference.
    """
    return ["-O3", "-fopenmp", "-ffp-contract=off", "-fno-math-errno", "-Wno-psabi", *ISAS[isa][1]]


# --- the library --------------------------------------------------------------------------------------

def sources_digest() -> str:
    """A digest of the library's sources (what a prebuilt manifest records under ``sources.native``)."""
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode())
        h.update((_CSRC / name).read_bytes())
    return h.hexdigest()[:16]


def compile_command(output: Path, isa: str) -> list[str]:
    """The compiler command that builds the library for ``isa`` into ``output``."""
    cxx = os.environ.get("CXX", "c++")
    sources = [str(_CSRC / s) for s in SOURCES if s.endswith(".cpp")]
    return [cxx, "-shared", "-fPIC", "-std=c++17", *cpu_cflags(isa), f"-I{_CSRC}", *sources, "-o", str(output)]


def _build_dir(isa: str) -> Path:
    h = hashlib.sha256()
    for part in (sources_digest(), str(_CSRC), " ".join(cpu_cflags(isa)), os.environ.get("CXX", "c++"),
                 f"abi{ABI}"):
        h.update(part.encode())
    return extensions_dir() / f"{NAME}-{h.hexdigest()[:12]}"


def _prebuilt_library(isa: str) -> tuple[Path | None, str]:
    """The prebuilt library for ``isa`` and its description, or ``(None, why not)``."""
    if os.environ.get("LGI_PREBUILT", "").strip() == "0":
        return None, "LGI_PREBUILT=0"
    path = _PREBUILT / "manifest.json"
    if not path.is_file():
        return None, "no prebuilt kernels in this install"
    try:
        manifest = json.loads(path.read_text())
        entry = manifest.get("native") or {}
        digest = manifest.get("sources", {}).get("native")
    except (OSError, ValueError, AttributeError) as exc:
        return None, f"unreadable {path}: {exc}"
    if digest != sources_digest():
        return None, "the prebuilt kernels were built from other sources" if entry else "no native library"
    if isa not in entry:
        return None, f"the prebuilt kernels have no {isa} variant"
    library = _PREBUILT / entry[isa]
    if not library.is_file():
        return None, f"{library} is missing"
    return library, f"prebuilt, {isa}"


def _build(isa: str) -> Path:
    """Build the library into the cache (once per machine; concurrent processes wait for one build)."""
    build_dir = _build_dir(isa)
    library = build_dir / f"{NAME}.so"
    if library.is_file():
        return library
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise BackendUnavailable(f"no C++ compiler: '{cxx}' is not on PATH (install g++ or set CXX)")
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"lgi: waiting for another process building the native renderer in {build_dir}",
                  file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if library.is_file():  # the other process built it
            return library
        print(f"lgi: building the native renderer (once, about half a minute) in {build_dir}", file=sys.stderr,
              flush=True)
        partial = build_dir / f".{NAME}.{os.getpid()}.so"
        res = subprocess.run(compile_command(partial, isa), capture_output=True, text=True)
        if res.returncode != 0:
            partial.unlink(missing_ok=True)
            tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-20:])
            raise BackendUnavailable(f"building the native renderer of lgi-gsplat2d failed: {tail}")
        os.replace(partial, library)
    return library


_lock = threading.Lock()
_state: dict[str, object] = {}


def _settings() -> tuple:
    """What decides where the library comes from: a failure is remembered only while these stay put."""
    return tuple(os.environ.get(k) for k in ("CXX", "LGI_EXTENSIONS_DIR", "LGI_PREBUILT", "LGI_KERNEL_ISA"))


def _load() -> ctypes.CDLL:
    with _lock:
        if "lib" in _state:
            return _state["lib"]
        if "error" in _state and _state.get("settings") == _settings():
            raise BackendUnavailable(_state["error"])
        _state["settings"] = _settings()
        try:
            isa = cpu_isa()
            path, origin = _prebuilt_library(isa)
            if path is None:
                path, origin = _build(isa), f"built, {isa}"
            lib = ctypes.CDLL(str(path))
            if lib.lgi_native_abi() != ABI:
                raise BackendUnavailable(f"{path} has ABI {lib.lgi_native_abi()}, this module expects {ABI}")
        except BackendUnavailable as exc:
            _state["error"] = str(exc)
            raise
        except OSError as exc:  # ctypes could not load it (e.g. a missing libgomp)
            _state["error"] = f"the native renderer does not load: {exc}"
            raise BackendUnavailable(_state["error"]) from exc
        f32, i32, i64 = ctypes.POINTER(ctypes.c_float), ctypes.c_int, ctypes.c_int64
        lib.lgi_render_band_f32.restype = i32
        lib.lgi_render_band_f32.argtypes = [i64, f32, f32, f32, f32, i32, i32, i32, i32, i32, i32, i32, i32, f32,
                                            ctypes.c_char_p, i32]
        _state["lib"], _state["origin"] = lib, origin
        return lib


def available() -> bool:
    """Whether the native renderer loads (building it if need be); never raises."""
    try:
        _load()
    except BackendUnavailable:
        return False
    return True


def library_origin() -> str:
    """How the library was had: ``"prebuilt, <isa>"`` or ``"built, <isa>"`` (loads it first)."""
    _load()
    return str(_state["origin"])


def status() -> str:
    """How the library is or would be had: loaded, prebuilt, built (cached) or built on first use.

    Looks at the install and the build cache only (never compiles, never loads).
    """
    if "lib" in _state:
        return f"loaded ({_state['origin']})"
    try:
        isa = cpu_isa()
    except BackendUnavailable as exc:
        return f"unavailable: {exc}"
    path, origin = _prebuilt_library(isa)
    if path is not None:
        return origin
    if (_build_dir(isa) / f"{NAME}.so").is_file():
        return f"built, {isa}"
    return "not built (builds on first use)"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask on Linux, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads to render with: ``$OMP_NUM_THREADS``, else :func:`usable_cpus`."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return usable_cpus()


def _f32(name: str, a, shape: tuple) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float32)
    if arr.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, arr.shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain(s) NaN or Inf")
    return arr


def _ptr(arr: np.ndarray):
    return arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def render_band(means, scales, rotations, colors, height: int, width: int, y0: int, rows: int, mode: str = "topk",
                k: int = 10, threads: int | None = None) -> np.ndarray:
    """Rows ``[y0, y0 + rows)`` of the ``height`` x ``width`` render, [rows, width, C] float32 (not clamped).

    The arguments are those of :func:`lgi_gsplat2d.render` as numpy arrays (float32; rotations [N] or
    [N, 1]); the band equals that render's rows (bit for bit for the whole image).

    Raises:
        ValueError: bad arguments. RenderLimitError: beyond the rasterizer's 2^31 limits.
        BackendUnavailable: the library cannot be built or loaded. MemoryError: out of memory.
    """
    for name, v in (("height", height), ("width", width), ("rows", rows)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if isinstance(y0, bool) or not isinstance(y0, int) or not 0 <= y0 <= height - rows:
        raise ValueError(f"rows [{y0}, {y0} + {rows}) must lie inside the height {height}")
    if mode not in MODES:
        raise ValueError(f"mode must be 'sum', 'topk' or 'topk-hard', got {mode!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an int in [1, {MAX_K}], got {k!r}")
    means = _f32("means", means, (None, 2))
    n = means.shape[0]
    scales = _f32("scales", scales, (n, 2))
    rotations = _f32("rotations", np.asarray(rotations).reshape(-1) if np.ndim(rotations) == 2 else rotations, (n,))
    colors = _f32("colors", colors, (n, None))
    if colors.shape[1] < 1:
        raise ValueError("colors must have at least one channel")
    c = colors.shape[1]
    slots = rows * width * (k if mode != "sum" else 1)
    if slots > (1 << 31) - 1:
        raise RenderLimitError(f"image too large for one render call: {rows} x {width} x k={k} = {slots} "
                               "> 2^31 - 1; render it in bands of rows")
    lib = _load()
    out = np.empty((rows, width, c), np.float32)
    err = ctypes.create_string_buffer(256)
    status = lib.lgi_render_band_f32(n, _ptr(means), _ptr(scales), _ptr(rotations), _ptr(colors), c, height, width,
                                     y0, rows, MODES[mode], k, threads or default_threads(), _ptr(out), err, 256)
    if status == 0:
        return out
    msg = err.value.decode(errors="replace")
    if status == 2:
        raise RenderLimitError(msg)
    if status == 3:
        raise MemoryError(msg)
    raise ValueError(f"native render failed: {msg}")


def render(means, scales, rotations, colors, height: int, width: int, mode: str = "topk", k: int = 10,
           threads: int | None = None) -> np.ndarray:
    """The whole ``height`` x ``width`` image, [H, W, C] float32: :func:`lgi_gsplat2d.render` in numpy."""
    return render_band(means, scales, rotations, colors, height, width, 0, height, mode, k, threads)
