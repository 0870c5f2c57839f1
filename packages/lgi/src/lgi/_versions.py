"""What `lgi versions` reports: LGI distributions, Python, torch, CUDA and native kernel builds."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import distributions, entry_points


def _lgi_distributions() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name == "lgi" or name.startswith("lgi-"):
            found[name] = dist.version
    return dict(sorted(found.items()))


def _torch_info() -> dict:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - report, do not fail
        return {"version": None, "error": f"{type(exc).__name__}: {exc}"}
    cuda = torch.cuda.is_available()
    return {
        "version": torch.__version__,
        "cuda_available": cuda,
        "cuda_build": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if cuda else None,
        "threads": torch.get_num_threads(),
    }


def _kernels() -> dict[str, dict[str, str]]:
    """Ask every package that registered under ``lgi.kernels`` whether its kernels are built.

    The contract: the entry point is a function ``kernel_status() -> dict[backend, status]`` that
    never compiles anything (it only looks at the build cache).
    """
    status: dict[str, dict[str, str]] = {}
    for ep in entry_points(group="lgi.kernels"):
        try:
            status[ep.name] = dict(ep.load()())
        except Exception as exc:  # noqa: BLE001
            status[ep.name] = {"error": f"{type(exc).__name__}: {exc}"}
    return dict(sorted(status.items()))


def collect() -> dict:
    return {
        "packages": _lgi_distributions(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "platform": platform.platform(),
        "torch": _torch_info(),
        "kernels": _kernels(),
    }


def format_report(report: dict) -> str:
    lines = ["LGI packages:"]
    lines += [f"  {name:<16} {ver}" for name, ver in report["packages"].items()] or ["  (none found)"]
    lines.append(f"python           {report['python']} ({report['platform']})")
    t = report["torch"]
    if t.get("version") is None:
        lines.append(f"torch            not importable: {t.get('error')}")
    else:
        cuda = f"yes, {t['device']}" if t["cuda_available"] else "no"
        lines.append(f"torch            {t['version']} (CUDA build {t['cuda_build']}, CUDA available: {cuda}, "
                     f"{t['threads']} CPU threads)")
    lines.append("native kernels:")
    if not report["kernels"]:
        lines.append("  (no package registers native kernels)")
    for pkg, backends in report["kernels"].items():
        for backend, state in backends.items():
            lines.append(f"  {pkg:<16} {backend:<5} {state}")
    return "\n".join(lines)
